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

TEXTS = ["Who likes Joshua Trees?", "a much longer passage about quokkas river otters and tapirs", "short"]
TRUST = {"trust_remote_code": True}


def _corpus() -> list[str]:
    return [p.query_prompt for p in PRESETS.values()] + TEXTS + ["q: d: query document"]


def tiny_tokenizer(folder: Path) -> None:
    """A byte-level BPE trained on the test strings, with pad / eos / unk tokens (decoder-style, no specials).

    Byte-level BPE because transformers loads the tokenizer class of the model type (Qwen2Tokenizer for a qwen2
    config), which rebuilds a byte-level BPE from the saved vocabulary and merges: the same tokens as trained here.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<pad>", "</s>", "<unk>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(_corpus(), trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>", eos_token="</s>")
    fast.save_pretrained(folder)


def tiny_bert(folder: Path) -> Path:
    from transformers import BertConfig, BertModel

    folder.mkdir(parents=True)
    src = Path(minilm_path())
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(src / name, folder / name)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128)
    BertModel(config).save_pretrained(folder)
    return folder


def tiny_decoder(folder: Path, family: str) -> Path:
    from transformers import MistralConfig, MistralModel, Qwen2Config, Qwen2Model

    folder.mkdir(parents=True)
    tiny_tokenizer(folder)
    vocab = len(json.loads((folder / "tokenizer.json").read_text())["model"]["vocab"])
    kwargs = dict(vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, max_position_embeddings=128, pad_token_id=0, eos_token_id=1)
    torch.manual_seed(0)
    model = Qwen2Model(Qwen2Config(**kwargs)) if family == "qwen2" else MistralModel(MistralConfig(**kwargs))
    model.save_pretrained(folder)
    return folder


def st_folder(folder: Path, base: Path, pooling: str = "mean", dense_out: int | None = None,
              prompts: dict[str, str] | None = None) -> Path:
    """A sentence-transformers folder (modules.json, prompts) around a tiny base model."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Dense, Pooling, Transformer

    torch.manual_seed(1)
    encoder = Transformer(str(base))
    modules = [encoder, Pooling(encoder.get_embedding_dimension(), pooling_mode=pooling)]
    if dense_out:
        modules.append(Dense(encoder.get_embedding_dimension(), dense_out))
    SentenceTransformer(modules=modules, prompts=prompts, device="cpu").save(str(folder))
    return folder


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
    for name in ("contriever", "stella", "inf-retriever", "nv-embed", "minilm", "st:"):
        assert names[name].kind == "dense"
        assert names[name].param_defaults()["trust_remote_code"] is False
    assert {n: p.remote_code for n, p in PRESETS.items()} == {
        "contriever": False, "stella": True, "inf-retriever": True, "nv-embed": True, "minilm": False}
    assert all(p.source for p in PRESETS.values())


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
