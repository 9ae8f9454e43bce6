"""`-r finetune=frozen`: AMER and Single-Query on text as a small transformer over a frozen reader's cached token
states (retrievers/amer.py, bench/models/reader.py), on limit-small's real text."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from bench.cli import main
from bench.data.task import build_task
from bench.errors import BenchError
from bench.systems.context import RunContext
from bench.systems.retriever import build_retriever
from bench.train.checkpoint import load_checkpoint
from tests.support.tiny_lm import write_tiny_lm

TASK = ["--task", "limit-small", "-t", "train_fraction=0.5", "--device", "cpu"]
SMALL = ["-r", "finetune=frozen", "-r", "steps=12", "-r", "batch_size=32", "-r", "eval_every=6"]


def _checkpoints(name: str) -> set[Path]:
    return set((Path(os.environ["BENCH_CACHE_DIR"]) / "checkpoints").glob(f"{name}-*.safetensors"))


@pytest.mark.slow
@pytest.mark.parametrize("retriever", ["amer", "single-query"])
def test_frozen_training_keeps_the_reader_out_of_the_checkpoint_and_runs_from_it(
        retriever: str, tmp_path: Path, shared_data, capsys) -> None:
    before = _checkpoints(retriever)
    assert main(["train", "--retriever", retriever, *TASK, *SMALL]) == 0
    (ckpt,) = _checkpoints(retriever) - before
    stored = load_checkpoint(ckpt)
    model, reader = stored.meta["model"], stored.meta["reader"]
    assert reader["name"] == "minilm" and reader["kind"] == "sentence-transformers"
    assert model["query_input"] == "sequence" and model["residual"] is True and model["d_query"] == 384
    assert model["backbone"]["pretrained"] is None  # the tiny transformer trains; MiniLM stays outside
    assert sum(t.numel() for t in stored.state_dict.values()) < 1_000_000  # MiniLM alone has 22.7M
    results = tmp_path / "results"
    assert main(["run", "--retriever", retriever, *TASK, *SMALL, "--results-dir", str(results)]) == 0
    assert "using checkpoint" in capsys.readouterr().err
    (run_file,) = results.rglob("*.json")
    info = json.loads(run_file.read_text())["retriever_info"]
    assert info["finetune"] == "frozen" and info["reader"]["identity"] == reader["identity"]
    assert info["trained_now"] is False and info["m"] == (2 if retriever == "amer" else 1)


@pytest.mark.slow
def test_a_loaded_checkpoint_gives_the_vectors_of_the_trained_model(shared_data) -> None:
    data = build_task("limit-small", ["train_fraction=0.5"]).load()
    dense = build_retriever("minilm")
    emb = dense.document_encoder(data).encode_corpus(data.corpus)
    ctx = RunContext(task=data, corpus_embeddings=emb, index=None, device="cpu")
    trained = build_retriever("amer", ["finetune=frozen", "steps=6", "batch_size=16", "eval_every=3"])
    trained.prepare(ctx)
    test = data.split("test")
    vecs = trained.encode_queries(test, ctx)
    assert vecs.shape == (len(test), 2, 384)
    fresh = build_retriever("amer")  # default parameters: the checkpoint says what it is
    fresh.load_checkpoint(trained.checkpoint)
    assert np.allclose(fresh.encode_queries(test, ctx), vecs, atol=1e-5)


def test_the_checkpoint_key_follows_the_reader(tmp_path: Path, shared_data) -> None:
    data = build_task("limit-small", ["train_fraction=0.5"]).load()
    ctx = RunContext(task=data, corpus_embeddings=None, index=None, device="cpu")

    def key(*params: str) -> tuple[Path, dict]:
        return build_retriever("amer", ["finetune=frozen", *params]).checkpoint_for(ctx)

    path, config = key()
    assert config["reader"] and key("max_length=8")[0] != path
    folder = write_tiny_lm(tmp_path / "lm", ["who likes apples ?"], seed=0)
    lm_path, lm_config = key(f"backbone={folder}")
    assert lm_path != path and lm_config["reader"] != config["reader"]
    assert build_retriever("amer", ["finetune=lora"]).checkpoint_for(ctx)[1].get("reader") is None


def test_residual_is_on_for_the_document_encoder_and_refused_for_another_space(tmp_path: Path) -> None:
    assert build_retriever("amer", ["finetune=frozen"]).residual() is True
    assert build_retriever("amer", ["finetune=frozen", "residual=false"]).residual() is False
    folder = write_tiny_lm(tmp_path / "lm", ["who likes apples ?"], seed=0)
    assert build_retriever("amer", ["finetune=frozen", f"backbone={folder}"]).residual() is False
    with pytest.raises(BenchError, match="residual=true needs a reader that embeds in the document encoder's space"):
        build_retriever("amer", ["finetune=frozen", f"backbone={folder}", "residual=true"]).residual()
    with pytest.raises(BenchError, match="finetune must be one of lora, full, frozen"):
        build_retriever("amer", ["finetune=adapters"])
