"""The trainer (bench/train/loop.py) under each training-recipe parameter: what reaches the optimiser, the clip, the
scheduled-sampling ramp, the batches, and the one-label steps."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from bench.data.task import Split, Targets
from bench.errors import BenchError
from bench.models import BackboneConfig, QueryEncoder
from bench.train.config import RECIPES, TrainConfig
from bench.train.data import Batch, TrainingExamples
from bench.train.loop import Trainer
from bench.train.strategy import SingleProcess

N_CORPUS = 300


def _examples(counts: list[int], seed: int = 0) -> TrainingExamples:
    """One query per entry of `counts`, with that many one-document answer clusters (distinct corpus rows)."""
    rng = np.random.default_rng(seed)
    docs = iter(rng.permutation(N_CORPUS).tolist())
    nested = [[[next(docs)] for _ in range(c)] for c in counts]
    x = rng.standard_normal((len(counts), 4)).astype(np.float32)
    split = Split("train", [str(i) for i in range(len(counts))], Targets.from_nested(nested), vectors=x)
    return TrainingExamples.from_split(split)


def _corpus() -> np.ndarray:
    c = np.random.default_rng(1).standard_normal((N_CORPUS, 8)).astype(np.float32)
    return c / np.linalg.norm(c, axis=1, keepdims=True)


def _trainer(counts: list[int], **cfg: Any) -> Trainer:
    torch.manual_seed(0)
    model = QueryEncoder(BackboneConfig(width=16, layers=1, heads=2), 4, 8, 0.5)
    settings = {"steps": 6, "batch_size": 8, "eval_every": 3, "val_fraction": 0.1, "checkpoint_every": 0, **cfg}
    return Trainer(model, _examples(counts), _corpus(), TrainConfig(**settings))


class _Spy:
    """Records every optimiser step of a trainer: the objective and the batch it was taken on."""

    def __init__(self, trainer: Trainer, monkeypatch: pytest.MonkeyPatch) -> None:
        self.steps: list[tuple[str, Batch]] = []
        original = trainer.optimise

        def optimise(wrapped: Any, batch: Batch, objective: Any) -> float:
            self.steps.append((objective.name, batch))
            return original(wrapped, batch, objective)

        monkeypatch.setattr(trainer, "optimise", optimise)


def test_one_label_steps_follow_every_amer_step_without_stepping_the_schedule(monkeypatch) -> None:
    trainer = _trainer([3] * 20, one_label=True)
    spy = _Spy(trainer, monkeypatch)
    trainer.run()
    names = [name for name, _ in spy.steps]
    assert names == ["matched", "rand1"] * 6  # 6 AMER steps, each followed by one one-label step
    assert trainer.sched.last_epoch == 6  # the learning-rate schedule counts the AMER steps only
    for name, batch in spy.steps:
        width = 1 if name == "rand1" else 3
        assert batch.rows.shape == (len(batch.idx), width) and batch.mask.all()
    off = _trainer([3] * 20)
    spy_off = _Spy(off, monkeypatch)
    off.run()
    assert [name for name, _ in spy_off.steps] == ["matched"] * 6  # the harness: none


def test_single_query_takes_no_one_label_steps(monkeypatch) -> None:
    trainer = _trainer([3] * 20, objective="rand1", recipe="reference")
    spy = _Spy(trainer, monkeypatch)
    trainer.run()
    assert [name for name, _ in spy.steps] == ["rand1"] * 6


@pytest.mark.parametrize(("cfg", "clip", "eps"), [({}, 1.0, 1e-8), ({"recipe": "reference"}, 5.0, 1e-6),
                                                  ({"recipe": "reference", "clip": 2.0, "eps": 1e-7}, 2.0, 1e-7),
                                                  ({"clip": 5.0}, 5.0, 1e-8)])
def test_clip_and_eps_reach_the_optimiser(monkeypatch, cfg: dict, clip: float, eps: float) -> None:
    seen: list[float] = []
    original = torch.nn.utils.clip_grad_norm_

    def spy(params: Any, max_norm: float, *args: Any, **kw: Any) -> torch.Tensor:
        seen.append(max_norm)
        return original(params, max_norm, *args, **kw)

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", spy)
    trainer = _trainer([2] * 20, **cfg)
    trainer.run()
    assert set(seen) == {clip} and len(seen) == 6 * (2 if cfg.get("recipe") == "reference" else 1)
    assert trainer.opt.param_groups[0]["eps"] == eps


def test_srm_reaches_the_logged_sampling_probability() -> None:
    """p logged at steps done 3 and 6 of 6, i.e. the 0-based steps t = 2 and 5: min(0.8, srm·t/6)."""
    for srm, expected in ((1.0, [2 / 6, 0.8]), (2.0, [4 / 6, 0.8]), (10.0, [0.8, 0.8])):
        hist = _trainer([2] * 20, srm=srm).run().history
        assert [h["p_predicted"] for h in hist] == pytest.approx(expected)


def test_majority_batching_drops_the_minority_examples(monkeypatch) -> None:
    counts = [1] * 6 + [2] * 14 + [3] * 10  # mixed answer counts
    trainer = _trainer(counts, batching="majority", steps=8)
    spy = _Spy(trainer, monkeypatch)
    trainer.run()
    n = trainer.train_ex.n_answers()
    dropped = 0
    for _, batch in spy.steps:
        assert len(set(n[batch.idx].tolist())) == 1  # one answer count per batch
        assert batch.rows.shape[1] == n[batch.idx][0] and batch.mask.all()  # columns cut to it
        dropped += 8 - len(batch.idx)
    assert dropped > 0  # batches at a count boundary lost their minority examples
    padded = _trainer(counts, steps=8)
    spy_p = _Spy(padded, monkeypatch)
    padded.run()
    assert {len(b.idx) for _, b in spy_p.steps} == {8}
    assert any(len(set(padded.train_ex.n_answers()[b.idx].tolist())) > 1 for _, b in spy_p.steps)


def test_majority_batching_is_refused_across_processes() -> None:
    class TwoProcesses(SingleProcess):
        world_size = 2

    trainer = _trainer([2] * 20, batching="majority")
    trainer.strategy = TwoProcesses()
    with pytest.raises(BenchError, match="majority"):
        trainer.run()


def test_fixed_negatives_are_identical_across_epochs(monkeypatch) -> None:
    trainer = _trainer([3] * 20, negatives="fixed", steps=12)  # 18 training examples, batch 8: ~5 epochs
    spy = _Spy(trainer, monkeypatch)
    trainer.run()
    negs: dict[int, set] = {}
    for _, batch in spy.steps:
        for i, example in enumerate(batch.idx.tolist()):
            pairs = set(zip(batch.rows[i].tolist(), batch.neg[i].tolist(), strict=True))
            assert negs.setdefault(example, pairs) == pairs
    assert sum(1 for _, b in spy.steps for _ in b.idx) > 2 * len(negs)  # every example seen in several epochs
    assert trainer.fixed_neg is not None and trainer.fixed_neg.shape == (18, 3)


def test_the_reference_recipe_resolves_every_parameter() -> None:
    cfg = TrainConfig(recipe="reference", srm=1.0)
    assert cfg.recipe_values() == {"recipe": "reference", **RECIPES["reference"], "srm": 1.0}  # explicit wins
    assert TrainConfig().recipe_values() == {"recipe": "harness", **RECIPES["harness"]}
