"""`mteb:<model>`: registry lookups, the wrapper's code path on the local MiniLM, and the error without mteb.

mteb is an optional extra, installed by the `dev` extra (CI). Loading a registry model from the hub is not possible
offline; these tests use the registry's metadata and point the loader at local weights (-r model_path=).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from bench.data.task import build_task
from bench.errors import BenchError
from bench.evaluate import evaluate_named
from bench.index import FlatIndex
from bench.registry import RETRIEVERS
from bench.systems.context import RunContext
from bench.systems.retriever import build_retriever
from retrievers.dense import PRESETS, minilm_path
from tests.support.beir import make_beir

MINILM = "sentence-transformers/all-MiniLM-L6-v2"


def test_clear_error_without_mteb(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "mteb", None)  # import mteb now raises ImportError
    with pytest.raises(BenchError, match=r"need the optional mteb package: pip install 'mteb>=2.26,<3'"):
        build_retriever(f"mteb:{MINILM}")
    assert RETRIEVERS.all()["mteb:"].kind == "dense"  # listed even without mteb


def test_prefix_needs_a_model() -> None:
    with pytest.raises(BenchError, match="unknown retriever 'mteb:'"):
        build_retriever("mteb:")


@pytest.fixture(scope="module")
def mteb():  # noqa: ANN201
    return pytest.importorskip("mteb", reason="mteb is in the dev extra: pip install -e '.[dev]'")


@pytest.mark.parametrize("preset", ["contriever", "stella", "stella-1.5b", "inf-retriever", "inf-retriever-7b",
                                    "nv-embed"])
def test_presets_agree_with_the_mteb_registry(mteb, preset: str) -> None:  # noqa: ANN001
    p = PRESETS[preset]
    meta = mteb.get_model_meta(p.model_id)
    assert meta.revision == p.revision
    assert str(getattr(meta.similarity_fn_name, "value", meta.similarity_fn_name)) == p.similarity
    assert bool((meta.loader_kwargs or {}).get("trust_remote_code")) == p.remote_code
    if preset == "nv-embed":
        assert meta.loader_kwargs["add_eos_token"] is p.add_eos and meta.loader_kwargs["padding_side"] == "right"
        assert meta.loader_kwargs["instruction_template"]("X") == "Instruct: X\nQuery: "


def test_remote_code_models_need_the_flag(mteb) -> None:  # noqa: ANN001
    with pytest.raises(BenchError, match="trust_remote_code=true"):
        build_retriever("mteb:nvidia/NV-Embed-v2")
    with pytest.raises(BenchError, match="mteb has no task 'NoSuchTask'"):
        build_retriever(f"mteb:{MINILM}", {"mteb_task": "NoSuchTask", "model_path": minilm_path()})


def test_wrapper_encodes_like_sentence_transformers(mteb) -> None:  # noqa: ANN001
    from sentence_transformers import SentenceTransformer

    retriever = build_retriever(f"mteb:{MINILM}", {"model_path": minilm_path(), "device": "cpu"})
    texts = ["Who likes Joshua Trees?", "Geneva Durben likes Quokkas and River Otters.", "x"]
    ref = SentenceTransformer(minilm_path(), device="cpu").encode(texts)
    advanced: list[int] = []
    np.testing.assert_array_equal(retriever.encode(texts, "document", advanced.append), ref)
    np.testing.assert_array_equal(retriever.encode(texts, "query"), ref)  # MiniLM has no prompts
    assert sum(advanced) == 3
    info = retriever.info()
    assert info["model_id"] == MINILM and info["revision"] == mteb.get_model_meta(MINILM).revision
    assert info["mteb_task"] == "NQ" and info["weights_sha256"] and info["mteb_version"] == mteb.__version__
    assert retriever.space() != build_retriever(f"mteb:{MINILM}", {"model_path": minilm_path(),
                                                                   "mteb_task": "SciFact"}).space()


def test_mteb_run_matches_minilm_on_a_small_beir_task(mteb, tmp_path: Path) -> None:  # noqa: ANN001
    folder = make_beir(tmp_path / "t")
    results = {}
    for name, params in ((f"mteb:{MINILM}", {"model_path": minilm_path(), "device": "cpu"}),
                         ("minilm", {"device": "cpu"})):
        result, _ = evaluate_named("beir", name, (1, 2), [f"data_dir={folder}"], params, results_dir=tmp_path / "r")
        results[name] = result
    assert results[f"mteb:{MINILM}"].per_query == results["minilm"].per_query


def test_query_dimension_check(mteb, tmp_path: Path) -> None:  # noqa: ANN001
    retriever = build_retriever(f"mteb:{MINILM}", {"model_path": minilm_path(), "device": "cpu"})
    data = build_task("limit-small").load()
    split = data.split("test").subset(np.arange(2))
    index = FlatIndex.from_embeddings(np.eye(8, dtype=np.float32), device="cpu")
    index.path = tmp_path / "x.faiss"
    with pytest.raises(BenchError, match=r"x.faiss: field 'dim': the index holds 8-dim vectors"):
        retriever.encode_queries(split, RunContext(task=data, corpus_embeddings=index.vectors(), index=index))


def test_prompt_name_and_refusal_with_several_query_prompts(mteb, tmp_path: Path) -> None:  # noqa: ANN001
    """A model whose config names s2p_query and s2s_query (as stella's does): mteb picks neither for NQ, so the wrapper
    refuses to drop them silently; -r prompt_name=s2p_query encodes queries with that prompt, says so and records it."""
    import io
    import json

    from rich.console import Console
    from sentence_transformers import SentenceTransformer

    from tests.support.tiny_encoders import st_folder, tiny_bert

    folder = st_folder(tmp_path / "st", tiny_bert(tmp_path / "bert"), exact_prompts=True,
                       prompts={"s2p_query": "Instruct: passages\nQuery: ", "s2s_query": "Instruct: similar\nQuery: "})
    assert json.loads((folder / "config_sentence_transformers.json").read_text())["prompts"].keys() == {
        "s2p_query", "s2s_query"}
    with pytest.raises(BenchError, match=r"names query prompts \(s2p_query, s2s_query\) and mteb picks none of them "
                                         r"for task NQ: choose one with -r prompt_name=NAME"):
        build_retriever(f"mteb:{MINILM}", {"model_path": str(folder), "device": "cpu"}).model()
    with pytest.raises(BenchError, match="no prompt named 'x'"):
        build_retriever(f"mteb:{MINILM}", {"model_path": str(folder), "device": "cpu", "prompt_name": "x"}).model()
    retriever = build_retriever(f"mteb:{MINILM}", {"model_path": str(folder), "device": "cpu",
                                                   "prompt_name": "s2p_query"})
    data = build_task("limit-small").load()
    split = data.split("test").subset(np.arange(3))
    console = Console(file=io.StringIO(), width=300)
    q = retriever.encode_queries(split, RunContext(task=data, corpus_embeddings=None, index=None, console=console))
    ref = SentenceTransformer(str(folder), device="cpu")
    np.testing.assert_allclose(q[:, 0], ref.encode(list(split.texts), prompt_name="s2p_query"), atol=1e-6)
    assert "query prompt 'Instruct: passages\\nQuery: ' from model config (s2p_query, parameter prompt_name)" \
        in console.file.getvalue()
    info = retriever.info()
    assert info["query_prompt"] == "Instruct: passages\nQuery: "
    # documents keep mteb's choice (none here)
    np.testing.assert_allclose(retriever.encode(["a passage"], "document"), ref.encode(["a passage"]), atol=1e-6)


def test_mteb_says_which_prompt_it_used_without_prompts(mteb) -> None:  # noqa: ANN001
    retriever = build_retriever(f"mteb:{MINILM}", {"model_path": minilm_path(), "device": "cpu"})
    retriever.model()
    assert retriever.query_prompt == "" and retriever.query_prompt_source == "none (mteb picks no prompt for task NQ)"
