"""Multi-positive objectives (bench/train/objectives/joint.py, summarg.py, lsepair.py): each against its formula
written out with Python loops on a small batch, finite gradients, equal to InfoNCE with one positive per query."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from bench.train.loss import matched_infonce
from bench.train.objectives import LossInputs, get_objective, objective_names

TAU = 0.1


def _batch(b: int = 4, t: int = 3, d: int = 6, seed: int = 0, counts: tuple[int, ...] | None = None,
           reduction: str = "example") -> LossInputs:
    g = torch.Generator().manual_seed(seed)
    preds = F.normalize(torch.randn(b, 1, d, generator=g, dtype=torch.float64), dim=-1).requires_grad_(True)
    pos = F.normalize(torch.randn(b, t, d, generator=g, dtype=torch.float64), dim=-1)
    neg = F.normalize(torch.randn(b, t, d, generator=g, dtype=torch.float64), dim=-1)
    counts = counts or tuple(1 + (i % t) for i in range(b))
    mask = torch.tensor([[j < c for j in range(t)] for c in counts])
    return LossInputs(preds, pos, neg, mask, TAU, reduction)


def _loop(batch: LossInputs, kind: str) -> float:
    """The formulas of the docstrings, one scalar at a time."""
    q = batch.preds.detach().numpy()[:, 0]
    pos, neg, mask = batch.positives.numpy(), batch.negatives.numpy(), batch.mask.numpy()
    b, t, _ = pos.shape
    cands = [(e, j, pos[e, j]) for e in range(b) for j in range(t) if mask[e, j]]
    cands += [(-1, -1, neg[e, j]) for e in range(b) for j in range(t) if mask[e, j]]
    total, norm = 0.0, 0.0
    for e in range(b):
        s = {i: float(np.dot(q[e], c)) / TAU for i, (_, _, c) in enumerate(cands)}
        own = [i for i, (owner, _, _) in enumerate(cands) if owner == e]
        others = [i for i in s if i not in own]
        z = sum(math.exp(v) for v in s.values())
        if kind == "joint":
            loss = sum(-math.log(math.exp(s[p]) / z) for p in own) / len(own)
        elif kind == "summarg":
            loss = -math.log(sum(math.exp(s[p]) for p in own) / z)
        else:
            loss = math.log(1 + sum(math.exp(s[n] - s[p]) for p in own for n in others))
        w = 1.0 if batch.reduction == "example" else float(len(own))
        total += w * loss
        norm += w
    return total / norm


def _value(kind: str, batch: LossInputs) -> float:
    return float(get_objective(kind).loss(batch).detach())


@pytest.mark.parametrize("kind", ["joint", "summarg", "lsepair"])
@pytest.mark.parametrize("reduction", ["example", "target"])
def test_matches_the_formula_written_with_loops(kind: str, reduction: str) -> None:
    batch = _batch(b=5, t=3, counts=(1, 3, 2, 3, 1), reduction=reduction, seed=1)
    got = _value(kind, batch)
    assert got == pytest.approx(_loop(batch, kind), rel=1e-9)


@pytest.mark.parametrize("kind", ["joint", "summarg", "lsepair"])
def test_gradients_are_finite_and_nonzero(kind: str) -> None:
    batch = _batch(b=4, t=4, counts=(4, 1, 2, 3), seed=2)
    loss = get_objective(kind).loss(batch)
    loss.backward()
    grad = batch.preds.grad
    assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0


@pytest.mark.parametrize("kind", ["joint", "summarg", "lsepair"])
@pytest.mark.parametrize("reduction", ["example", "target"])
def test_one_positive_each_is_plain_infonce(kind: str, reduction: str) -> None:
    batch = _batch(b=6, t=1, counts=(1,) * 6, seed=3, reduction=reduction)
    ref, _ = matched_infonce(batch.preds, batch.positives, batch.negatives, TAU, batch.mask, reduction=reduction)
    assert _value(kind, batch) == pytest.approx(float(ref.detach()), rel=1e-12)
    assert _value(kind, batch) == pytest.approx(_value("rand1", batch),
                                                                    rel=1e-12)


def test_padded_targets_change_nothing() -> None:
    """A padded slot (mask False) is neither a positive nor a candidate, whatever vector it holds."""
    batch = _batch(b=3, t=3, counts=(1, 2, 3), seed=4)
    other = LossInputs(batch.preds, batch.positives.clone(), batch.negatives.clone(), batch.mask, TAU, "example")
    other.positives[~batch.mask] = 7.0
    other.negatives[~batch.mask] = -3.0
    for kind in ("joint", "summarg", "lsepair"):
        assert _value(kind, other) == pytest.approx(_value(kind, batch))


def test_objectives_differ_with_several_positives_and_are_ordered() -> None:
    """JointLH ≥ SumMargLH (−mean log p ≥ −log Σ p), and the three disagree once a query has several positives."""
    batch = _batch(b=4, t=3, counts=(3, 3, 2, 2), seed=5)
    joint, summ, lse = (_value(k, batch) for k in ("joint", "summarg", "lsepair"))
    assert joint > summ
    assert len({round(joint, 6), round(summ, 6), round(lse, 6)}) == 3


def test_registered_single_vector_and_train_on_every_target() -> None:
    assert {"rand1", "joint", "summarg", "lsepair"} <= set(objective_names())
    rows, mask = np.arange(6).reshape(2, 3), np.array([[True, True, False], [True, True, True]])
    for kind in ("joint", "summarg", "lsepair"):
        obj = get_objective(kind)
        assert not obj.autoregressive and obj.n_predictions(3) == 1
        r, m = obj.select(rows, mask)
        assert (r == rows).all() and (m == mask).all()


def test_several_predictions_are_refused() -> None:
    batch = _batch()
    two = LossInputs(batch.preds.detach().repeat(1, 2, 1), batch.positives, batch.negatives, batch.mask, TAU,
                     "example")
    with pytest.raises(ValueError, match="one query vector"):
        get_objective("lsepair").loss(two)
