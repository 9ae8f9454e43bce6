"""`matched-stop`: AMER with a learned stop — matched InfoNCE in which each example's answers are matched to its
*first* predictions, plus a stop head's binary cross-entropy against the number of answers
(bench/models/stop_head.py)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment

from bench.train.loss import Collective
from bench.train.objectives import LossInputs, Objective, register_objective

# λ: measured on the planted test (tests/test_learned_stop.py, d = 8, tiny backbone): with λ = 1 the head reached 94%
# count accuracy only after 1,500 steps, with λ = 4 after 600; the retrieval loss it shares the gradient with
# (clipped jointly at 1.0) is several nats larger than the BCE, which λ = 1 leaves too weak a signal.
STOP_WEIGHT = 4.0


def prefix_matched_infonce(preds: torch.Tensor, positives: torch.Tensor, negatives: torch.Tensor, tau: float,
                           target_mask: torch.Tensor, reduction: str = "example",
                           dist: Collective | None = None) -> torch.Tensor:
    """`bench.train.loss.matched_infonce` (same candidates C, same ℓ_b(i, j), same reductions) except that the T_b
    targets of example b are matched, by the Hungarian algorithm, to its first T_b predictions only:

        L_b = min over bijections π: {1..T_b} → {1..T_b} of Σ_j ℓ_b(π(j), j)

    A model that stops after c vectors must have put the c answers in those c vectors; with plain matching, a query
    with 2 answers may have them at positions 3 and 5 of 5, which a stop after 2 would lose."""
    b, m, d = preds.shape
    t = positives.shape[1]
    if positives.shape != negatives.shape or positives.shape[0] != b or positives.shape[2] != d:
        raise ValueError(f"shapes do not match: preds {tuple(preds.shape)}, positives {tuple(positives.shape)}")
    if reduction not in ("example", "target"):
        raise ValueError(f"reduction must be 'example' or 'target', got {reduction!r}")
    counts = target_mask.sum(dim=1)
    if int(counts.max()) > m or int(counts.min()) < 1:
        raise ValueError(f"every example needs 1..{m} targets")
    local = torch.cat([positives.reshape(b * t, d), negatives.reshape(b * t, d)]).to(preds.dtype)
    valid = torch.cat([target_mask.reshape(-1), target_mask.reshape(-1)])
    offset = 0
    if dist is not None:
        local, offset = dist.gather(local)
        valid, _ = dist.gather(valid)
    logits = (preds.reshape(b * m, d) @ local.T / tau).masked_fill(~valid[None, :], float("-inf"))
    logp = torch.log_softmax(logits, dim=-1)
    own = logp[:, offset: offset + b * t].reshape(b, m, b, t)
    idx = torch.arange(b, device=preds.device)
    cost = -own[idx, :, idx, :]  # (B, M, T)
    cost_np = cost.detach().float().cpu().numpy()
    mask_np = target_mask.cpu().numpy()
    sel: list[tuple[int, int, int]] = []
    for e in range(b):
        cols = np.flatnonzero(mask_np[e])
        rows, pos = linear_sum_assignment(cost_np[e][: len(cols)][:, cols])
        sel += [(e, int(i), int(cols[j])) for i, j in zip(rows, pos, strict=True)]
    sb, si, sj = (torch.as_tensor(v, device=preds.device) for v in zip(*sel, strict=True))
    terms = cost[sb, si, sj]
    if reduction == "example":
        terms = terms / counts.to(terms.dtype)[sb]
        norm = torch.tensor(float(b), device=preds.device)
    else:
        norm = counts.sum().to(torch.float64)
    if dist is not None:
        norm = dist.sum(norm)
    return terms.sum() / norm.to(terms.dtype)


@register_objective("matched-stop")
class MatchedStop(Objective):
    """L = L_prefix + λ · L_stop, λ = 4 (`STOP_WEIGHT`, see there). L_prefix is `prefix_matched_infonce`: matched
    InfoNCE (bench/train/loss.py) with example b's T_b answers matched to its first T_b predictions. For stop
    logits z_bi (position i = 1..M of example b, M the batch's most targets), T_b the example's number of sampled
    targets (one per answer cluster):

        L_stop = (1/B) Σ_b (1/M) Σ_i BCE(σ(z_bi), 1[i < T_b])

    i.e. after vector i the head predicts whether another answer remains. Positions past T_b are trained to 0 too,
    so a model that overshoots learns to stop. Under DDP B counts every process's examples. The model must be a
    StopQueryEncoder (LossInputs.stop_logits set by the trainer)."""

    autoregressive = True

    def loss(self, batch: LossInputs) -> torch.Tensor:
        from bench.models.stop_head import stop_targets  # lazily: the model package pulls in transformers

        logits = batch.stop_logits
        if logits is None:
            raise ValueError("objective matched-stop needs stop logits: train a StopQueryEncoder "
                             "(bench/models/stop_head.py)")
        loss = prefix_matched_infonce(batch.preds, batch.positives, batch.negatives, batch.tau, batch.mask,
                                      reduction=batch.reduction, dist=batch.dist)
        m = batch.preds.shape[1]
        bce = F.binary_cross_entropy_with_logits(logits[:, :m], stop_targets(batch.mask, m), reduction="none")
        norm = torch.tensor(float(bce.shape[0]), device=bce.device)
        if batch.dist is not None:
            norm = batch.dist.sum(norm)
        return loss + STOP_WEIGHT * bce.mean(dim=1).sum() / norm.to(bce.dtype)
