"""Matched InfoNCE (bench/train/loss.py) against a brute-force minimum over every assignment."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from bench.train.loss import matched_infonce


def _unit(*shape: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(*shape, generator=g, dtype=torch.float64), dim=-1)


def _brute_force(preds, pos, neg, tau, mask, reduction: str = "example") -> float:
    """min over injective maps targets → predictions of Σ ℓ per example; then the mean over examples of the
    per-example mean (reduction="example") or the sum over examples divided by the number of targets (numpy)."""
    p, y, n, mk = (t.numpy() for t in (preds, pos, neg, mask))
    b, m, d = p.shape
    cands = np.concatenate([y.reshape(-1, d), n.reshape(-1, d)])
    valid = np.concatenate([mk.reshape(-1), mk.reshape(-1)])
    total, count = 0.0, 0
    for e in range(b):
        logits = p[e] @ cands[valid].T / tau  # (m, C)
        lse = np.log(np.exp(logits - logits.max(1, keepdims=True)).sum(1)) + logits.max(1)
        targets = np.flatnonzero(mk[e])
        cost = lse[:, None] - (p[e] @ y[e][targets].T) / tau  # (m, T_e)
        best = min(sum(cost[perm[j], j] for j in range(len(targets)))
                   for perm in itertools.permutations(range(m), len(targets)))
        if reduction == "example":
            total += best / len(targets)
            count += 1
        else:
            total += best
            count += len(targets)
    return total / count


@pytest.mark.parametrize("m", [1, 2, 3, 4])
def test_matched_loss_is_the_minimum_over_all_permutations(m: int) -> None:
    b, d, tau = 3, 8, 0.1
    preds, pos, neg = _unit(b, m, d, seed=m), _unit(b, m, d, seed=10 + m), _unit(b, m, d, seed=20 + m)
    mask = torch.ones(b, m, dtype=torch.bool)
    loss, assignment = matched_infonce(preds, pos, neg, tau)
    assert loss.item() == pytest.approx(_brute_force(preds, pos, neg, tau, mask), rel=1e-9)
    # every example's predictions take each target exactly once
    assert all(sorted(row) == list(range(m)) for row in assignment.tolist())


def test_matched_loss_is_below_every_fixed_order() -> None:
    """The identity order (what an unmatched loss would use) can never beat the matched one, and here it is worse."""
    b, m, d, tau = 4, 4, 8, 0.1
    preds, pos, neg = _unit(b, m, d, seed=1), _unit(b, m, d, seed=2), _unit(b, m, d, seed=3)
    matched, _ = matched_infonce(preds, pos, neg, tau)
    logits = preds.reshape(-1, d) @ torch.cat([pos.reshape(-1, d), neg.reshape(-1, d)]).T / tau
    identity = F.cross_entropy(logits, torch.arange(b * m))
    assert matched.item() < identity.item()


def test_masked_targets_and_spare_predictions_match_brute_force() -> None:
    """Examples with fewer targets than predictions: padding is no candidate, spare predictions add nothing."""
    b, m, d, tau = 3, 4, 6, 0.07
    preds, pos, neg = _unit(b, m, d, seed=4), _unit(b, m, d, seed=5), _unit(b, m, d, seed=6)
    mask = torch.tensor([[True, True, True, True], [True, True, False, False], [True, False, False, False]])
    loss, assignment = matched_infonce(preds, pos, neg, tau, mask)
    assert loss.item() == pytest.approx(_brute_force(preds, pos, neg, tau, mask), rel=1e-9)
    per_target, _ = matched_infonce(preds, pos, neg, tau, mask, reduction="target")
    assert per_target.item() == pytest.approx(_brute_force(preds, pos, neg, tau, mask, "target"), rel=1e-9)
    assert per_target.item() != pytest.approx(loss.item())  # unequal counts: the two averages differ
    assert (assignment[1] >= 0).sum() == 2 and (assignment[2] >= 0).sum() == 1
    assert set(assignment[1][assignment[1] >= 0].tolist()) == {0, 1}


def test_one_prediction_one_target_is_plain_infonce() -> None:
    b, d, tau = 5, 8, 0.05
    preds, pos, neg = _unit(b, 1, d, seed=7), _unit(b, 1, d, seed=8), _unit(b, 1, d, seed=9)
    loss, _ = matched_infonce(preds, pos, neg, tau)
    logits = preds[:, 0] @ torch.cat([pos[:, 0], neg[:, 0]]).T / tau
    assert loss.item() == pytest.approx(F.cross_entropy(logits, torch.arange(b)).item(), rel=1e-9)


def test_gradient_reaches_matched_predictions_only() -> None:
    b, m, d = 2, 3, 8
    preds = _unit(b, m, d, seed=11).requires_grad_(True)
    pos, neg = _unit(b, 2, d, seed=12), _unit(b, 2, d, seed=13)
    mask = torch.tensor([[True, True], [True, False]])
    loss, assignment = matched_infonce(preds, pos, neg, 0.1, mask)
    loss.backward()
    grad_norm = preds.grad.norm(dim=-1)  # type: ignore[union-attr]
    assert torch.equal(grad_norm > 0, torch.from_numpy(assignment >= 0))


def test_more_targets_than_predictions_is_an_error() -> None:
    with pytest.raises(ValueError, match="predictions"):
        matched_infonce(_unit(2, 1, 4, seed=1), _unit(2, 2, 4, seed=2), _unit(2, 2, 4, seed=3), 0.1)
    with pytest.raises(ValueError, match="shapes"):
        matched_infonce(_unit(2, 2, 4, seed=1), _unit(2, 2, 4, seed=2), _unit(2, 3, 4, seed=3), 0.1)


@pytest.mark.parametrize("reduction", ["example", "target"])
def test_padding_does_not_change_the_loss_of_real_targets(reduction: str) -> None:
    """Padded target slots (any content) are neither targets nor candidates: more padding, same loss and gradient."""
    b, m, d, tau = 3, 5, 6, 0.1
    preds = _unit(b, m, d, seed=30).requires_grad_(True)
    pos, neg = _unit(b, 3, d, seed=31), _unit(b, 3, d, seed=32)
    mask = torch.tensor([[True, True, True], [True, True, False], [True, False, False]])
    loss, assignment = matched_infonce(preds, pos, neg, tau, mask, reduction=reduction)
    (grad,) = torch.autograd.grad(loss, preds)
    junk_pos, junk_neg = _unit(b, 2, d, seed=33), _unit(b, 2, d, seed=34)
    padded_pos, padded_neg = torch.cat([pos, junk_pos], 1), torch.cat([neg, junk_neg], 1)
    padded_mask = torch.cat([mask, torch.zeros(b, 2, dtype=torch.bool)], 1)
    loss2, assignment2 = matched_infonce(preds, padded_pos, padded_neg, tau, padded_mask, reduction=reduction)
    (grad2,) = torch.autograd.grad(loss2, preds)
    assert loss2.item() == pytest.approx(loss.item(), rel=1e-12)
    assert torch.allclose(grad, grad2, atol=1e-12)
    assert np.array_equal(assignment, assignment2)
