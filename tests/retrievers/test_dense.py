"""Dense presets: every preset's prompt / pooling / normalisation code path on a tiny random model of its family.

These check code paths, not quality: a tiny BERT stands in for Contriever, MiniLM and stella (whose real 'new'
architecture is remote code), a tiny Qwen2 for inf-retriever, a tiny Mistral for NV-Embed (whose latent-attention
pooling lives in the repository's remote code and cannot run offline). Each model is saved to a temp folder and
loaded through `-r model_path=`; the harness's embeddings are compared with a direct computation.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from bench.data.task import Split, Targets, TaskData
from bench.errors import BenchError
from bench.index import FlatIndex
from bench.registry import RETRIEVERS
from bench.systems.context import RunContext
from bench.systems.retriever import build_retriever
from retrievers.dense import PRESETS, DenseModel, DenseParams, minilm_path
from tests.support.tiny_encoders import st_folder, tiny_bert, tiny_decoder

TEXTS = ["Who likes Joshua Trees?", "a much longer passage about quokkas river otters and tapirs", "short"]
TRUST = {"trust_remote_code": True}


def manual(folder: Path, texts: list[str], pooling: str, normalize: bool) -> np.ndarray:
    """Embeddings computed directly with transformers, one text at a time (no padding)."""
    from transformers import AutoModel, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModel.from_pretrained(folder).eval()
    out = []
    with torch.no_grad():
        for text in texts:
            enc = tok(text, return_tensors="pt")
            hidden = model(**enc).last_hidden_state[0]
            v = hidden.mean(0) if pooling == "mean" else hidden[-1]
            out.append(torch.nn.functional.normalize(v, dim=0) if normalize else v)
    return torch.stack(out).numpy()


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tiny-models")
    bert = tiny_bert(root / "bert")
    return {
        "bert": bert,
        "qwen2": tiny_decoder(root / "qwen2", "qwen2"),
        "mistral": tiny_decoder(root / "mistral", "mistral"),
        "stella": st_folder(root / "stella", bert, dense_out=24, prompts={
            "s2p_query": "Instruct: Given a question about animals.\nQuery: ",
            "s2s_query": "Instruct: similar\nQuery: "}),
        "cls": st_folder(root / "cls", bert, pooling="cls"),
        "prompted": st_folder(root / "prompted", bert, prompts={"query": "q: ", "document": "d: "}),
        # the config files of stella_en_1.5B_v5 (Qwen2 → mean Pooling → Dense without activation; s2p / s2s prompts)
        # and of inf-retriever-v1 (Qwen2 → last-token Pooling → Normalize; one prompt, "query")
        "stella-1.5b": st_folder(root / "stella-1.5b", tiny_decoder(root / "qwen2-st", "qwen2"), dense_out=24,
                                 identity_dense=True, exact_prompts=True,
                                 prompts={"s2p_query": PRESETS["stella-1.5b"].query_prompt,
                                          "s2s_query": "Instruct: similar\nQuery: "}),
        "inf-7b": st_folder(root / "inf-7b", tiny_decoder(root / "qwen2-inf", "qwen2"), pooling="lasttoken",
                            normalize=True, exact_prompts=True,
                            prompts={"query": PRESETS["inf-retriever-7b"].query_prompt}),
    }


def dense(name: str, path: Path, **params: object) -> DenseModel:
    return DenseModel(PRESETS[name], DenseParams(model_path=str(path), device="cpu", **params), name)


def test_contriever_mean_pooling_without_normalisation(models: dict[str, Path]) -> None:
    m = dense("contriever", models["bert"])
    assert (m.st_config, m.pooling, m.normalize, m.query_prompt, m.document_prompt) == (False, "mean", False, "", "")
    got = m.encode(TEXTS, m.query_prompt)
    np.testing.assert_allclose(got, manual(models["bert"], TEXTS, "mean", False), atol=2e-5)
    assert not np.allclose(np.linalg.norm(got, axis=1), 1.0)
    info = m.info()
    assert info["model_id"] == "facebook/contriever-msmarco" and info["weights_sha256"]
    assert info["similarity"] == "dot" and info["harness_similarity"] == "cosine"
    assert info["preset_revision"] == PRESETS["contriever"].revision


def test_stella_prompt_and_modules_come_from_its_config(models: dict[str, Path]) -> None:
    from sentence_transformers import SentenceTransformer

    with pytest.raises(BenchError, match=r"trust_remote_code=true"):
        dense("stella", models["stella"])
    m = dense("stella", models["stella"], **TRUST)
    assert m.st_config and m.query_prompt == "Instruct: Given a question about animals.\nQuery: "
    assert m.query_prompt_source == "model config (s2p_query)"
    # sentence-transformers saves an empty "document" prompt next to the named ones: the folder's config wins
    assert (m.document_prompt, m.document_prompt_source) == ("", "model config (document)")
    ref = SentenceTransformer(str(models["stella"]), device="cpu")
    q = m.encode(TEXTS, m.query_prompt)
    assert q.shape == (3, 24)  # the Dense module of the folder ran
    np.testing.assert_array_equal(q, ref.encode(TEXTS, prompt_name="s2p_query"))
    np.testing.assert_array_equal(m.encode(TEXTS, m.document_prompt), ref.encode(TEXTS))
    assert not np.allclose(q, ref.encode(TEXTS))  # the query prompt changed the vectors


def test_folder_pooling_wins_over_the_preset(models: dict[str, Path]) -> None:
    from sentence_transformers import SentenceTransformer

    m = dense("contriever", models["cls"])  # the preset says mean; the folder's modules.json says CLS
    assert m.st_config and m.pooling == "cls"
    ref = SentenceTransformer(str(models["cls"]), device="cpu")
    np.testing.assert_array_equal(m.encode(TEXTS, ""), ref.encode(TEXTS))
    assert not np.allclose(m.encode(TEXTS, ""), manual(models["bert"], TEXTS, "mean", False), atol=1e-3)


def test_inf_retriever_last_token_pooling_and_query_instruction(models: dict[str, Path]) -> None:
    m = dense("inf-retriever", models["qwen2"], **TRUST)
    assert (m.st_config, m.pooling, m.normalize) == (False, "lasttoken", True)
    prompt = PRESETS["inf-retriever"].query_prompt
    assert m.query_prompt == prompt and m.document_prompt == ""
    q = m.encode(TEXTS, m.query_prompt)  # a padded batch
    np.testing.assert_allclose(q, manual(models["qwen2"], [prompt + t for t in TEXTS], "last", True), atol=2e-5)
    d = m.encode(TEXTS, m.document_prompt)
    np.testing.assert_allclose(d, manual(models["qwen2"], TEXTS, "last", True), atol=2e-5)


def test_nv_embed_appends_eos_pads_right_and_mean_pools(models: dict[str, Path]) -> None:
    with pytest.raises(BenchError, match="trust_remote_code"):
        dense("nv-embed", models["mistral"])
    m = dense("nv-embed", models["mistral"], **TRUST)
    model = m.model()
    assert model[0].tokenizer.padding_side == "right"
    assert model.max_seq_length == 32768
    prompt = PRESETS["nv-embed"].query_prompt
    q = m.encode(TEXTS, m.query_prompt)
    expected = manual(models["mistral"], [prompt + t + "</s>" for t in TEXTS], "mean", True)
    np.testing.assert_allclose(q, expected, atol=2e-5)
    without_eos = manual(models["mistral"], [prompt + t for t in TEXTS], "mean", True)
    assert not np.allclose(q, without_eos, atol=1e-4)


def test_model_prompts_and_explicit_overrides(models: dict[str, Path]) -> None:
    m = DenseModel(PRESETS["contriever"], DenseParams(model_path=str(models["prompted"]), device="cpu"), "contriever")
    assert (m.query_prompt, m.query_prompt_source) == ("q: ", "model config (query)")
    assert (m.document_prompt, m.document_prompt_source) == ("d: ", "model config (document)")
    o = DenseModel(PRESETS["contriever"], DenseParams(model_path=str(models["prompted"]), device="cpu",
                                                      query_prompt="query ", document_prompt=""), "contriever")
    assert (o.query_prompt, o.query_prompt_source, o.document_prompt) == ("query ", "parameter", "")


def test_document_space_follows_what_changes_document_vectors(models: dict[str, Path]) -> None:
    base = dense("contriever", models["prompted"]).space()
    assert dense("contriever", models["prompted"], query_prompt="other ").space() == base
    assert dense("contriever", models["prompted"], document_prompt="other ").space() != base
    assert dense("contriever", models["prompted"], max_seq_length=16).space() != base
    assert dense("contriever", models["cls"]).space() != base
    assert base.startswith("facebook/contriever-msmarco@")


def test_generic_st_prefix_loads_any_model(models: dict[str, Path]) -> None:
    import sre_embedding_model
    from sentence_transformers import SentenceTransformer

    folder = Path(sre_embedding_model.__file__).parent / "model_weights"
    retriever = build_retriever(f"st:{folder}", {"device": "cpu"})
    assert RETRIEVERS.get(f"st:{folder}")[1] == str(folder)
    got = retriever.dense.encode(TEXTS, retriever.dense.query_prompt)
    np.testing.assert_array_equal(got, SentenceTransformer(str(folder), device="cpu").encode(TEXTS))
    minilm = build_retriever("minilm", {"device": "cpu"}).dense.encode(TEXTS, "")
    assert not np.allclose(got, minilm, atol=1e-3)  # a different model, really loaded
    assert retriever.info()["preset"] is None and retriever.info()["model_path"] == str(folder.resolve())


def test_preset_without_local_weights_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(BenchError, match=r"'facebook/contriever-msmarco' at revision abe8c14\w+ is not in the local"):
        build_retriever("contriever")
    with pytest.raises(BenchError, match="does not exist"):
        build_retriever("contriever", {"model_path": str(tmp_path / "missing")})


def test_presets_are_registered() -> None:
    names = RETRIEVERS.all()
    for name in ("contriever", "contriever-unsup", "stella", "stella-1.5b", "inf-retriever", "inf-retriever-7b",
                 "nv-embed", "minilm", "st:"):
        assert names[name].kind == "dense"
        assert names[name].param_defaults()["trust_remote_code"] is False
    assert {n: p.remote_code for n, p in PRESETS.items()} == {
        "contriever-unsup": False, "contriever": False, "stella": True, "stella-1.5b": True, "inf-retriever": True,
        "inf-retriever-7b": True, "nv-embed": True, "minilm": False}
    assert all(p.source for p in PRESETS.values())


# ------------------------------------------------------------------------- the presets the reference code and paper use
def _pooled(folder: Path, texts: list[str], pooling: str) -> torch.Tensor:
    """Mean or last-token pooled last hidden states of a base model folder, one text at a time (no padding)."""
    from transformers import AutoModel, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModel.from_pretrained(folder).eval()
    with torch.no_grad():
        hidden = [model(**tok(t, return_tensors="pt")).last_hidden_state[0] for t in texts]
    return torch.stack([h.mean(0) if pooling == "mean" else h[-1] for h in hidden])


def test_contriever_unsup_mean_pooling_dot_product_recorded(models: dict[str, Path]) -> None:
    m = dense("contriever-unsup", models["bert"])
    assert (m.st_config, m.pooling, m.normalize, m.query_prompt, m.document_prompt) == (False, "mean", False, "", "")
    got = m.encode(TEXTS, m.query_prompt)
    np.testing.assert_allclose(got, _pooled(models["bert"], TEXTS, "mean").numpy(), atol=2e-5)
    info = m.info()
    assert info["model_id"] == "facebook/contriever" and info["preset_revision"].startswith("2bd46a2")
    assert info["similarity"] == "dot" and info["harness_similarity"] == "cosine"  # the card's, and ours: both


def test_stella_cpu_settings_reach_the_model_config(models: dict[str, Path], tmp_path: Path) -> None:
    """stella_en_400M_v5's config turns memory-efficient attention and unpadding on (its 'new' architecture reads
    them); the preset turns both off on the CPU, as its card says to."""
    folder = shutil.copytree(models["stella"], tmp_path / "stella")
    cfg = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**cfg, "use_memory_efficient_attention": True,
                                                    "unpad_inputs": True}))
    m = dense("stella", folder, **TRUST)
    assert m.config_overrides() == {"use_memory_efficient_attention": False, "unpad_inputs": False}
    config = m.model()[0].auto_model.config
    assert config.use_memory_efficient_attention is False and config.unpad_inputs is False
    assert m.info()["config_overrides"] == m.config_overrides()
    assert dense("stella-1.5b", models["stella-1.5b"], **TRUST).config_overrides() == {}  # a Qwen2: none to set


def test_stella_1_5b_s2p_prompt_mean_pooling_and_dense(models: dict[str, Path]) -> None:
    folder = models["stella-1.5b"]
    with pytest.raises(BenchError, match="trust_remote_code=true"):
        dense("stella-1.5b", folder)
    m = dense("stella-1.5b", folder, **TRUST)
    assert m.st_config and (m.pooling, m.normalize) == ("mean", False)
    assert (m.query_prompt, m.query_prompt_source) == (PRESETS["stella-1.5b"].query_prompt, "model config (s2p_query)")
    assert m.document_prompt == ""
    from safetensors.torch import load_file

    dense_dir = next(p for p in folder.iterdir() if p.name.endswith("_Dense"))
    weights = load_file(dense_dir / "model.safetensors")
    w, b = weights["linear.weight"], weights["linear.bias"]
    q = m.encode(TEXTS, m.query_prompt)
    expect = _pooled(folder, [m.query_prompt + t for t in TEXTS], "mean") @ w.T + b  # mean → Dense, no activation
    np.testing.assert_allclose(q, expect.numpy(), atol=2e-5)
    d = m.encode(TEXTS, m.document_prompt)
    np.testing.assert_allclose(d, (_pooled(folder, TEXTS, "mean") @ w.T + b).numpy(), atol=2e-5)
    info = m.info()
    assert info["similarity"] == "cosine" and info["model_id"] == "NovaSearch/stella_en_1.5B_v5"


def test_inf_retriever_7b_query_prompt_last_token_normalised(models: dict[str, Path]) -> None:
    folder = models["inf-7b"]
    m = dense("inf-retriever-7b", folder, **TRUST)
    assert m.st_config and (m.pooling, m.normalize) == ("lasttoken", True)
    assert (m.query_prompt, m.query_prompt_source) == (PRESETS["inf-retriever-7b"].query_prompt, "model config (query)")
    q = m.encode(TEXTS, m.query_prompt)
    expect = torch.nn.functional.normalize(_pooled(folder, [m.query_prompt + t for t in TEXTS], "last"), dim=1)
    np.testing.assert_allclose(q, expect.numpy(), atol=2e-5)
    assert m.info()["similarity"] == "cosine" and m.info()["model_id"] == "infly/inf-retriever-v1"


def test_nv_embed_takes_the_task_instruction(models: dict[str, Path]) -> None:
    from rich.console import Console

    from tasks.ambigqa import NQ_INSTRUCTION

    retriever = build_retriever("nv-embed", {"model_path": str(models["mistral"]), "device": "cpu",
                                             "trust_remote_code": True})
    data = text_task()
    data.info["instruction"] = NQ_INSTRUCTION
    console = Console(file=__import__("io").StringIO(), width=300)
    q = retriever.encode_queries(data.split("test"), RunContext(task=data, corpus_embeddings=None, index=None,
                                                                console=console))
    prompt = "Instruct: Given a question, retrieve Wikipedia passages that answer the question\nQuery: "
    assert retriever.dense.query_prompt == prompt  # mteb's NQ wording in the model's template
    assert retriever.dense.query_prompt_source == "task instruction (t) in the preset's template"
    expect = manual(models["mistral"], [prompt + t + "</s>" for t in TEXTS], "mean", True)
    np.testing.assert_allclose(q[:, 0], expect, atol=2e-5)
    assert "nv-embed: query prompt 'Instruct: Given a question, retrieve Wikipedia passages" in console.file.getvalue()
    # an explicit prompt wins over the task's instruction; a task without one keeps the model card's
    fixed = build_retriever("nv-embed", {"model_path": str(models["mistral"]), "device": "cpu",
                                         "trust_remote_code": True, "query_prompt": "Q: "})
    fixed.dense.for_task(NQ_INSTRUCTION, "ambigqa")
    assert fixed.dense.query_prompt == "Q: "
    plain = dense("nv-embed", models["mistral"], **TRUST)
    plain.for_task(None, "limit-small")
    assert plain.query_prompt == PRESETS["nv-embed"].query_prompt and plain.query_prompt_source == "preset"


def test_st_refuses_to_guess_among_several_query_prompts(models: dict[str, Path]) -> None:
    from sentence_transformers import SentenceTransformer

    folder = models["stella-1.5b"]
    with pytest.raises(BenchError, match=r"several query prompts \(s2p_query, s2s_query\).*-r prompt_name=NAME"):
        build_retriever(f"st:{folder}", {"device": "cpu"})
    # a folder saved by sentence-transformers 6 adds an empty "query" prompt: it does not hide the named ones
    with pytest.raises(BenchError, match=r"several query prompts \(s2p_query, s2s_query\)"):
        build_retriever(f"st:{models['stella']}", {"device": "cpu"})
    with pytest.raises(BenchError, match=r"no prompt named 'p2p' \(its prompts: s2p_query, s2s_query\)"):
        build_retriever(f"st:{folder}", {"device": "cpu", "prompt_name": "p2p"})
    r = build_retriever(f"st:{folder}", {"device": "cpu", "prompt_name": "s2s_query"})
    assert r.dense.query_prompt_source == "model config (s2s_query, parameter prompt_name)"
    ref = SentenceTransformer(str(folder), device="cpu")
    np.testing.assert_array_equal(r.dense.encode(TEXTS, r.dense.query_prompt),
                                  ref.encode(TEXTS, prompt_name="s2s_query"))
    # a model with one query prompt, whatever its name, uses it and says so
    one = build_retriever(f"st:{models['inf-7b']}", {"device": "cpu"})
    assert one.dense.query_prompt_source == "model config (query)"
    assert one.dense.prompt_line().startswith(f"st:{models['inf-7b']}: query prompt 'Instruct: Given a web search")


def test_st_run_on_limit_small_names_its_prompt(models: dict[str, Path], shared_data: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    """`bench run --task limit-small --retriever st:<stella-like folder>` refuses to guess between s2p_query and
    s2s_query; with -r prompt_name it runs and prints one line naming the prompt it used."""
    from bench.cli import main

    folder = models["stella-1.5b"]
    base = ["run", "--task", "limit-small", "-t", f"data_dir={shared_data / 'limit-small'}", "--retriever",
            f"st:{folder}", "-r", "device=cpu", "--results-dir", str(tmp_path)]
    capsys.readouterr()
    assert main(base) == 2
    assert "several query prompts (s2p_query, s2s_query)" in capsys.readouterr().err
    assert main([*base, "-r", "prompt_name=s2p_query"]) == 0
    err = capsys.readouterr().err
    assert "query prompt 'Instruct: Given a web search query, retrieve relevant passages that answer the query." in err
    assert "from model config (s2p_query, parameter prompt_name)" in err
    rec = json.loads(next(tmp_path.rglob("*.json")).read_text())
    assert rec["retriever_info"]["query_prompt_source"] == "model config (s2p_query, parameter prompt_name)"


def text_task(n: int = 3) -> TaskData:
    from bench.data.task import Corpus

    targets = Targets.from_nested([[[0]] for _ in range(n)])
    split = Split("test", [f"q{i}" for i in range(n)], targets, texts=TEXTS[:n])
    return TaskData("t", Corpus(["d0"], "fp"), {"test": split}, modality="text")


def test_minilm_retriever_queries_and_dimension_check(tmp_path: Path) -> None:
    from sentence_transformers import SentenceTransformer

    retriever = build_retriever("minilm", {"device": "cpu"})
    data = text_task()
    index = FlatIndex.from_embeddings(np.eye(384, dtype=np.float32)[:2], device="cpu")
    ctx = RunContext(task=data, corpus_embeddings=index.vectors(), index=index, device="cpu")
    q = retriever.encode_queries(data.split("test"), ctx)
    assert q.shape == (3, 1, 384) and q.dtype == np.float32
    np.testing.assert_array_equal(q[:, 0], SentenceTransformer(minilm_path(), device="cpu").encode(TEXTS))
    advanced: list[int] = []
    retriever.dense.encode(TEXTS, "", advanced.append)  # progress bars advance per batch through a forward hook
    assert sum(advanced) == 3
    info = retriever.info()
    assert info["preset"] == "minilm" and info["model_id"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert info["weights_sha256"] and info["normalize"] and info["pooling"] == "mean"

    wrong = FlatIndex.from_embeddings(np.eye(8, dtype=np.float32), device="cpu")
    wrong.path = tmp_path / "stale.faiss"
    ctx = RunContext(task=data, corpus_embeddings=wrong.vectors(), index=wrong, device="cpu")
    with pytest.raises(BenchError) as err:
        retriever.encode_queries(data.split("test"), ctx)
    assert str(err.value).startswith(f"{tmp_path / 'stale.faiss'}: field 'dim': the index holds 8-dim vectors, but")


def test_dense_retrievers_refuse_vector_tasks() -> None:
    retriever = build_retriever("minilm", {"device": "cpu"})
    data = text_task()
    data.modality = "vector"
    with pytest.raises(BenchError, match="embeds text"):
        retriever.document_encoder(data)


def test_bad_parameters() -> None:
    with pytest.raises(BenchError, match="batch_size must be > 0"):
        build_retriever("minilm", ["batch_size=0"])
    with pytest.raises(BenchError, match="precision float16 needs a GPU"):
        build_retriever("minilm", ["dtype=float16", "device=cpu"])
    with pytest.raises(BenchError, match="precision/dtype must be auto, float32"):
        build_retriever("minilm", ["dtype=int3"])
    with pytest.raises(BenchError, match="processes must be ≥ 0"):
        build_retriever("minilm", ["processes=-1"])
