"""Text backbones: a causal LM by path with its chat template, LoRA, adapter checkpoints keyed by the base weights.

A tiny randomly initialised Llama (tests/tiny_lm.py) stands in for the pretrained LM: these tests check code paths,
not quality."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from bench.cli import main
from bench.data.task import Split, Targets, build_task
from bench.errors import BenchError
from bench.models import BackboneConfig, QueryEncoder
from bench.models.lora import LoraSettings
from bench.models.text import Prompter, load_tokenizer, weights_hash
from bench.systems.context import RunContext
from bench.systems.retriever import build_retriever
from bench.train.checkpoint import load_checkpoint, save_checkpoint
from bench.train.config import TrainConfig
from bench.train.data import TokenQueries, TrainingExamples
from bench.train.loop import Trainer
from tests.support.tiny_lm import write_tiny_lm

QUERIES = ["who likes apples ?", "who likes quokkas and apples ?", "which person likes tea ?", "who hates rain ?",
           "who likes snow ?", "who likes cats ?", "who likes dogs and tea ?", "who likes rain ?"]


@pytest.fixture(scope="module")
def lm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_lm(tmp_path_factory.mktemp("lm") / "tiny-llama", QUERIES, seed=0)


def _encoder(folder: Path, finetune: str = "lora", d_doc: int = 8) -> QueryEncoder:
    torch.manual_seed(0)
    return QueryEncoder(BackboneConfig(pretrained=str(folder)), 0, d_doc, 1.0, finetune=finetune,
                        lora=LoraSettings(r=4, alpha=8, dropout=0.1), base_hash=weights_hash(folder))


def _examples(folder: Path) -> tuple[TrainingExamples, np.ndarray]:
    """8 text queries with 1–3 answers each over a random 40-row corpus of unit vectors."""
    rng = np.random.default_rng(0)
    corpus = rng.standard_normal((40, 8)).astype(np.float32)
    corpus /= np.linalg.norm(corpus, axis=1, keepdims=True)
    nested = [[[int(d)] for d in rng.choice(40, size=1 + i % 3, replace=False)] for i in range(len(QUERIES))]
    split = Split("train", [str(i) for i in range(len(QUERIES))], Targets.from_nested(nested), texts=QUERIES)
    prompter = Prompter(load_tokenizer(folder), "find passages", 16)
    return TrainingExamples.from_split(split, tokenize=prompter), corpus


def test_queries_get_the_chat_template_and_left_padding(lm: Path) -> None:
    ex, _ = _examples(lm)
    assert isinstance(ex.inputs, TokenQueries)
    tok = load_tokenizer(lm)
    first = tok.convert_ids_to_tokens(ex.inputs.ids[0].tolist())
    assert first[:2] == ["<|im_start|>", "system"] and first[-2:] == ["<|im_start|>", "assistant"]
    assert "apples" in first
    batch = ex.inputs.batch(np.array([0, 1]))
    assert batch["attention_mask"][:, -1].all()  # the last token is real in every row: left padding
    short = len(ex.inputs.ids[0])
    assert batch["attention_mask"][0].sum() == short and not batch["attention_mask"][0, 0]
    assert ex.n_targets == 3 and ex.n_answers().tolist() == [1 + i % 3 for i in range(8)]


@torch.no_grad()
def test_a_later_target_cannot_change_an_earlier_output(lm: Path) -> None:
    model = _encoder(lm).eval()
    ex, _ = _examples(lm)
    inputs = ex.inputs.batch(np.arange(3))
    g = torch.Generator().manual_seed(1)
    y = torch.nn.functional.normalize(torch.randn(3, 4, 8, generator=g), dim=-1)
    no_pred = torch.zeros(3, 3, dtype=torch.bool)
    out = model(inputs, 4, teacher=y, use_pred=no_pred)
    y2 = y.clone()
    y2[:, 2] = torch.nn.functional.normalize(torch.randn(3, 8, generator=g), dim=-1)
    out2 = model(inputs, 4, teacher=y2, use_pred=no_pred)
    torch.testing.assert_close(out[:, :3], out2[:, :3], atol=0, rtol=0)  # q1..q3 see targets 1, 2 only
    assert not torch.allclose(out[:, 3], out2[:, 3])  # q4 sees target 3
    # a left-padded batch gives each query the vectors it gets alone
    alone = model(ex.inputs.batch(np.array([0])), 4, teacher=y[:1], use_pred=no_pred[:1])
    torch.testing.assert_close(out[:1], alone, atol=1e-5, rtol=1e-5)


def test_lora_trains_adapters_and_projections_and_leaves_the_base_untouched(lm: Path, tmp_path: Path) -> None:
    model = _encoder(lm)
    base_before = {k: v.clone() for k, v in model.named_parameters() if not v.requires_grad}
    trainable = {k for k, v in model.named_parameters() if v.requires_grad}
    assert base_before and trainable
    assert all("lora_" in k or k.startswith(("target_proj", "out_proj")) for k in trainable)
    lora_before = {k: v.clone() for k, v in model.named_parameters() if v.requires_grad}
    ex, corpus = _examples(lm)
    cfg = TrainConfig(steps=4, batch_size=4, lr=1e-2, eval_every=2, warmup=0.0, val_fraction=0.25,
                      checkpoint_every=0)
    result = Trainer(model, ex, corpus, cfg).run()
    after = dict(model.named_parameters())
    assert all(torch.equal(v, after[k]) for k, v in base_before.items())
    assert any(not torch.equal(v, after[k]) for k, v in lora_before.items() if "lora_B" in k)
    assert not torch.equal(lora_before["out_proj.weight"], after["out_proj.weight"])
    # the checkpoint holds adapters and projections only, and round-trips to identical outputs
    assert set(result.state_dict) == trainable
    path = save_checkpoint(tmp_path / "amer.safetensors", result.state_dict, {"model": model.config()})
    ckpt = load_checkpoint(path)
    assert not any("base_layer" in k or "embed_tokens" in k for k in ckpt.state_dict)
    fresh = QueryEncoder.from_config(ckpt.meta["model"])
    fresh.load_trainable_state_dict(ckpt.state_dict)
    inputs = ex.inputs.batch(np.arange(8))
    torch.testing.assert_close(model.eval().generate(inputs, 3), fresh.eval().generate(inputs, 3), atol=0, rtol=0)
    other = _encoder(lm)  # the same config, untrained adapters: different outputs
    assert not torch.allclose(other.eval().generate(inputs, 3), fresh.generate(inputs, 3))


def test_full_finetuning_trains_every_weight(lm: Path) -> None:
    model = _encoder(lm, finetune="full")
    assert all(p.requires_grad for p in model.parameters())
    assert set(model.trainable_state_dict()) == set(model.state_dict())


def test_the_checkpoint_key_follows_the_base_weights_not_the_path(lm: Path, tmp_path: Path, shared_data) -> None:
    data = build_task("limit-small", ["train_fraction=0.5"]).load()
    ctx = RunContext(task=data, corpus_embeddings=None, index=None, device="cpu")
    folder = write_tiny_lm(tmp_path / "lm", QUERIES, seed=0)

    def key(path: Path) -> Path:
        return build_retriever("amer", [f"backbone={path}"]).checkpoint_for(ctx)[0]

    first = key(folder)
    copy = tmp_path / "elsewhere"
    shutil.copytree(folder, copy)
    assert key(copy) == first  # the same weights at another path: the same checkpoint
    write_tiny_lm(folder, QUERIES, seed=1)  # other weights at the same path
    assert key(folder) != first


@pytest.mark.slow
def test_train_and_run_on_a_text_task_reuse_the_adapter_checkpoint(tmp_path: Path, shared_data, capsys) -> None:
    folder = write_tiny_lm(tmp_path / "lm", QUERIES, seed=0)
    task = ["--task", "limit-small", "-t", "train_fraction=0.3", "--device", "cpu"]
    small = ["-r", f"backbone={folder}", "-r", "steps=3", "-r", "batch_size=8", "-r", "eval_every=3",
             "-r", "lora_r=4", "-r", "val_fraction=0.05"]
    checkpoints = Path(__import__("os").environ["BENCH_CACHE_DIR"]) / "checkpoints"
    before = set(checkpoints.glob("amer-*.safetensors"))  # the session cache holds other tests' checkpoints too
    assert main(["train", "--retriever", "amer", *task, *small]) == 0
    out = capsys.readouterr().out
    assert "yes" in out
    (ckpt,) = set(checkpoints.glob("amer-*.safetensors")) - before
    meta = load_checkpoint(ckpt).meta
    assert meta["model"]["base_hash"] == weights_hash(folder) and meta["model"]["finetune"] == "lora"
    results = tmp_path / "results"
    assert main(["run", "--retriever", "amer", *task, *small, "--results-dir", str(results)]) == 0
    assert "using checkpoint" in capsys.readouterr().err
    (run_file,) = results.rglob("*.json")
    record = __import__("json").loads(run_file.read_text())
    assert record["retriever_info"]["m"] == 2 and record["retriever_info"]["m_pred_source"] == \
        "most answers of a train query"
    assert record["retriever_info"]["trained_now"] is False
    # other weights written at the same path: no stale checkpoint is used
    write_tiny_lm(folder, QUERIES, seed=3)
    assert main(["run", "--retriever", "amer", *task, *small, "--results-dir", str(results)]) == 0
    newest = max(results.rglob("*.json"), key=lambda p: p.stat().st_mtime_ns)
    assert __import__("json").loads(newest.read_text())["retriever_info"]["trained_now"] is True


def test_loading_a_checkpoint_over_changed_base_weights_is_an_error(tmp_path: Path) -> None:
    folder = write_tiny_lm(tmp_path / "lm", QUERIES, seed=0)
    model = _encoder(folder)
    meta = {"model": model.config(), "objective": "matched"}
    path = save_checkpoint(tmp_path / "a.safetensors", model.trainable_state_dict(), meta)
    write_tiny_lm(folder, QUERIES, seed=2)
    with pytest.raises(BenchError, match="base weights"):
        build_retriever("amer").load_checkpoint(path)


def test_a_text_backbone_loads_and_runs_without_library_warnings(lm: Path) -> None:
    """Our calls cause no FutureWarning (the key/value cache goes by the name the backbone takes; peft's own read of
    a deprecated property is filtered where we call it), and transformers' loading bars are ours."""
    import warnings

    from transformers.utils import logging as hf_logging

    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        model = _encoder(lm).eval()  # load the pretrained LM, wrap it with LoRA
        ex, _ = _examples(lm)
        with torch.no_grad():
            assert model(ex.inputs.batch(np.arange(2)), 3).shape == (2, 3, 8)
    assert model._cache_argument() == "cache"  # transformers 5: `past_key_values` is the deprecated alias
    assert hf_logging.is_progress_bar_enabled()  # switched off only while loading


def test_the_load_report_is_ours(lm: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    """Loading the base model of a causal LM leaves its head out, which transformers reports as a table; that is
    expected and held back. Weights the checkpoint lacks are one warning line."""
    from safetensors.torch import load_file, save_file

    from bench.models.backbone import load_pretrained

    load_pretrained(str(lm))
    err = capfd.readouterr().err
    assert "LOAD REPORT" not in err and "warning" not in err and "load backbone: 1/1" in err
    broken = tmp_path / "lm"
    shutil.copytree(lm, broken)
    weights = load_file(broken / "model.safetensors")
    dropped = sorted(k for k in weights if k.endswith("layers.1.mlp.up_proj.weight"))
    save_file({k: v for k, v in weights.items() if k not in dropped}, broken / "model.safetensors",
              metadata={"format": "pt"})
    load_pretrained(str(broken))
    err = capfd.readouterr().err
    assert "LOAD REPORT" not in err
    assert f"warning: backbone {broken}: 1 weights missing (initialised at random): layers.1.mlp.up_proj.weight" in \
        " ".join(err.split())
