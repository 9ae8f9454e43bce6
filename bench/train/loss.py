"""Matched InfoNCE: the AMER training loss (and, with one prediction and one target, Single-Query's InfoNCE)."""

from __future__ import annotations

import functools
import itertools
from typing import Protocol

import numpy as np
import torch


class Collective(Protocol):
    """What a loss needs from the distribution strategy (bench/train/strategy.py) to span every process's batch."""

    def gather(self, local: torch.Tensor) -> tuple[torch.Tensor, int]:
        """Concatenate every process's `local` along dim 0 (gradient kept for the local part); and where it starts."""
        ...

    def sum(self, value: torch.Tensor) -> torch.Tensor:
        """The sum over processes (no gradient)."""
        ...


def matched_infonce(
    preds: torch.Tensor,
    positives: torch.Tensor,
    negatives: torch.Tensor,
    tau: float,
    target_mask: torch.Tensor | None = None,
    reduction: str = "example",
    dist: Collective | None = None,
    prefix: bool = False,
) -> tuple[torch.Tensor, np.ndarray]:
    """InfoNCE over in-batch candidates, with each example's predictions matched to its unordered targets.

    Shapes: `preds` (B, M, d), `positives` and `negatives` (B, T, d) (one negative per positive), all
    L2-normalised; `target_mask` (B, T) marks real targets (default: all); padded targets are neither targets nor
    candidates, so padding never changes the loss. The candidate set C is every real positive and negative of the
    batch (2·ΣT_b vectors; under DDP, `dist` gathers those of every process). For prediction i and target j of
    example b

        ℓ_b(i, j) = −log [ exp(q_bi·y_bj / τ) / Σ_{c∈C} exp(q_bi·c / τ) ]

    and with π_b the injective map from the T_b targets to the M predictions (M ≥ T_b; unmatched predictions add
    nothing) that minimises Σ_j ℓ_b(π_b(j), j), found on the detached matrix (`match`: every map at once for the
    whole batch when M ≤ 6, else the Hungarian algorithm per example; gradients flow through the matched terms only):

        reduction="example" (default, as the reference implementation):  L = (1/B) Σ_b (1/T_b) Σ_j ℓ_b(π_b(j), j)
        reduction="target":                                              L = (1/Σ_b T_b) Σ_b Σ_j ℓ_b(π_b(j), j)

    Under DDP B and Σ_b T_b count every process's examples, so the per-process losses sum to the loss of the
    global batch. With M = T = 1 both are plain InfoNCE.

    `prefix=True` matches example b's T_b targets to its *first* T_b predictions only (π_b a bijection onto 1..T_b):
    a model that stops after T_b vectors (AMER's learned stop, objective `matched-stop`) must have put every answer
    in those; with plain matching a 2-answer query may hold its answers at positions 3 and 5 of 5.

    Returns the loss and the assignment: (B, M) int array giving each prediction's target index, −1 if unmatched.
    """
    b, m, d = preds.shape
    t = positives.shape[1]
    if positives.shape != negatives.shape or positives.shape[0] != b or positives.shape[2] != d:
        raise ValueError(f"shapes do not match: preds {tuple(preds.shape)}, positives {tuple(positives.shape)}, "
                         f"negatives {tuple(negatives.shape)}")
    if reduction not in ("example", "target"):
        raise ValueError(f"reduction must be 'example' or 'target', got {reduction!r}")
    if target_mask is None:
        target_mask = torch.ones(b, t, dtype=torch.bool, device=preds.device)
    counts = target_mask.sum(dim=1)
    count_list = counts.tolist()
    if max(count_list) > m:
        raise ValueError(f"an example has {max(count_list)} targets but only {m} predictions")
    if min(count_list) < 1:
        raise ValueError("every example needs at least one target")
    local = torch.cat([positives.reshape(b * t, d), negatives.reshape(b * t, d)]).to(preds.dtype)
    valid = torch.cat([target_mask.reshape(-1), target_mask.reshape(-1)])
    offset = 0
    if dist is not None:
        local, offset = dist.gather(local)
        valid, _ = dist.gather(valid)
    own = torch.arange(offset, offset + b * t, device=preds.device)  # this process's positives' columns in `local`
    if not bool(valid.all()):  # padding is no candidate: dropped (not masked), own columns renumbered
        own = (valid.cumsum(0) - 1).clamp(min=0)[own]
        local = local[valid]
    # 1/τ on the (B·M, d) side: one small product instead of one over every logit
    logp = torch.log_softmax((preds / tau).reshape(b * m, d) @ local.T, dim=-1)
    # Own-target block: cost[b, i, j] = −log p(target j of example b | prediction i of example b).
    cost = -logp[torch.arange(b * m, device=preds.device).reshape(b, m, 1), own.reshape(b, 1, t)]  # (B, M, T)
    mask_np = target_mask.cpu().numpy()
    assignment = match(cost.detach().float().cpu().numpy(), mask_np, prefix)
    sel_b, sel_i = np.nonzero(assignment >= 0)
    sel_j = assignment[sel_b, sel_i]
    sel = [torch.as_tensor(x, device=preds.device) for x in (sel_b, sel_i, sel_j)]
    terms = cost[sel[0], sel[1], sel[2]]
    if reduction == "example":
        terms = terms / counts.to(terms.dtype)[sel[0]]
        norm = torch.tensor(float(b), device=preds.device)
    else:
        norm = counts.sum().to(torch.float64)
    if dist is not None:
        norm = dist.sum(norm)
    return terms.sum() / norm.to(terms.dtype), assignment


_BRUTE_FORCE_MAX = 6  # up to 6 predictions every assignment is tried at once (6! = 720); above, scipy per example


def match(cost: np.ndarray, mask: np.ndarray, prefix: bool = False) -> np.ndarray:
    """The assignment minimising each example's summed cost over its real targets: (B, M) target index per
    prediction, −1 if unmatched. `cost` (B, M, T), `mask` (B, T) real targets; `prefix` restricts example b's
    targets to its first T_b predictions.

    Up to `_BRUTE_FORCE_MAX` predictions, every injective map targets → predictions is scored at once (one gather
    and a sum over a (B, maps, T) array; padded targets cost 0 anywhere, so they change no example's choice) and
    the first minimum taken: what the Hungarian algorithm minimises, for the whole batch in a few array operations
    instead of one `scipy.optimize.linear_sum_assignment` call per example. Above it, that call per example."""
    b, m, t = cost.shape
    counts = mask.sum(axis=1)
    assignment = np.full((b, m), -1, dtype=np.int64)
    if m <= _BRUTE_FORCE_MAX:
        maps = _injective_maps(m, t)  # (P, T): the prediction of each target
        c = np.where(mask[:, None, :], cost.astype(np.float64), 0.0)
        if prefix:  # a real target may only go to the example's first T_b predictions
            late = np.arange(m)[None, :, None] >= counts[:, None, None]
            c = np.where(late & mask[:, None, :], np.inf, c)
        total = c[:, maps, np.arange(t)].sum(axis=2)  # (B, P)
        best = maps[total.argmin(axis=1)]  # (B, T)
        ex, tgt = np.nonzero(mask)
        assignment[ex, best[ex, tgt]] = tgt
        return assignment
    from scipy.optimize import linear_sum_assignment  # here: scipy.optimize takes ~0.4 s to import

    for e in range(b):
        cols = np.flatnonzero(mask[e])
        pred_idx, tgt_pos = linear_sum_assignment(cost[e][: len(cols) if prefix else m][:, cols])
        assignment[e, pred_idx] = cols[tgt_pos]
    return assignment


@functools.cache
def _injective_maps(m: int, t: int) -> np.ndarray:
    return np.array(list(itertools.permutations(range(m), t)), dtype=np.int64).reshape(-1, t)
