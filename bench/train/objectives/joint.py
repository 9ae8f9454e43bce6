"""`joint`: JointLH — Single-Query trained with every gold document of a query as a positive, the joint likelihood
of all of them (Wang, Tang, Zhang, Guo & Bi 2026, "Training Dense Retrievers with Multiple Positive Passages",
arXiv 2602.12727). Also holds the candidate-set helper the other multi-positive objectives share."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from bench.registry import register_objective
from bench.train.objectives import LossInputs, Objective


@dataclass
class MultiPositiveScores:
    """Scores of one query vector per example against the batch's candidates (bench/train/objectives/joint.py).

    `logits` (B, C): s(q_b, c) / τ for every candidate c of the batch (all real positives and negatives of every
    example, gathered across processes under DDP), −inf for padding. `own` (B, T): the logits of example b's own
    positives (its real targets, −inf where masked). `own_index` (B, T): their columns in `logits`.
    `norm`: what the summed per-example losses are divided by (B, or Σ_b T_b for reduction="target"; global under
    DDP). `weight` (B,): each example's weight in that sum (1, or T_b)."""

    logits: torch.Tensor
    own: torch.Tensor
    own_index: torch.Tensor
    mask: torch.Tensor
    weight: torch.Tensor
    norm: torch.Tensor

    def reduce(self, per_example: torch.Tensor) -> torch.Tensor:
        return (per_example * self.weight).sum() / self.norm.to(per_example.dtype)

    def negatives_only(self) -> torch.Tensor:
        """`logits` with the example's own positives removed (−inf): the negatives N_b of each example."""
        out = self.logits.clone()
        b, t = self.own_index.shape
        rows = torch.arange(b, device=out.device)[:, None].expand(b, t)
        return out.index_put((rows[self.mask], self.own_index[self.mask]),
                             torch.tensor(float("-inf"), device=out.device, dtype=out.dtype))


def multi_positive_scores(batch: LossInputs) -> MultiPositiveScores:
    """The candidate set C of a batch, as `bench.train.loss.matched_infonce` builds it: every real positive and
    negative of the batch (2·Σ_b T_b vectors). Example b's positives P_b are its T_b real targets (one gold document
    per answer cluster, as sampled); its negatives N_b = C \\ P_b (other examples' targets and every random negative).
    Needs one prediction per example (M = 1)."""
    preds, pos, neg, mask = batch.preds, batch.positives, batch.negatives, batch.mask
    b, m, d = preds.shape
    t = pos.shape[1]
    if m != 1:
        raise ValueError(f"a multi-positive objective takes one query vector per example, got {m}")
    if pos.shape != neg.shape or pos.shape[0] != b or pos.shape[2] != d or mask.shape != (b, t):
        raise ValueError(f"shapes do not match: preds {tuple(preds.shape)}, positives {tuple(pos.shape)}, "
                         f"negatives {tuple(neg.shape)}, mask {tuple(mask.shape)}")
    counts = mask.sum(dim=1)
    if int(counts.min()) < 1:
        raise ValueError("every example needs at least one target")
    if batch.reduction not in ("example", "target"):
        raise ValueError(f"reduction must be 'example' or 'target', got {batch.reduction!r}")
    local = torch.cat([pos.reshape(b * t, d), neg.reshape(b * t, d)]).to(preds.dtype)
    valid = torch.cat([mask.reshape(-1), mask.reshape(-1)])
    offset = 0
    if batch.dist is not None:
        local, offset = batch.dist.gather(local)
        valid, _ = batch.dist.gather(valid)
    logits = (preds[:, 0] @ local.T / batch.tau).masked_fill(~valid[None, :], float("-inf"))
    own_index = offset + torch.arange(b, device=preds.device)[:, None] * t + torch.arange(t, device=preds.device)
    own = torch.gather(logits, 1, own_index).masked_fill(~mask, float("-inf"))
    if batch.reduction == "example":
        weight = torch.ones(b, dtype=logits.dtype, device=preds.device)
        norm = torch.tensor(float(b), device=preds.device)
    else:
        weight = counts.to(logits.dtype)
        norm = counts.sum().to(torch.float64)
    if batch.dist is not None:
        norm = batch.dist.sum(norm)
    return MultiPositiveScores(logits, own, own_index, mask, weight, norm)


@register_objective(
    "joint",
    description="Single-Query, multi-positive: the joint likelihood of every answer (sum of their log-probabilities)",
)
class JointLH(Objective):
    """JointLH (Wang et al. 2026, arXiv 2602.12727): maximise the joint likelihood of all positives, each scored by
    a softmax over the whole candidate set C (own other positives included):

        ℓ_b = −(1/|P_b|) Σ_{p∈P_b} log [ exp(s(q_b, p)/τ) / Σ_{c∈C} exp(s(q_b, c)/τ) ]

    L = (1/B) Σ_b ℓ_b (reduction="example"), or Σ_b |P_b|·ℓ_b / Σ_b |P_b| (reduction="target": the mean over every
    (example, positive) term). The softmax can give all positives at most 1 in total, so the optimum spreads
    probability evenly over them: sensitive to poor positives, as the paper reports. With one positive per example
    it is InfoNCE (Rand1LH's loss)."""

    autoregressive = False

    def loss(self, batch: LossInputs) -> torch.Tensor:
        sc = multi_positive_scores(batch)
        log_z = torch.logsumexp(sc.logits, dim=1)
        terms = torch.where(sc.mask, log_z[:, None] - sc.own, torch.zeros_like(sc.own))
        per_example = terms.sum(dim=1) / sc.mask.sum(dim=1).to(terms.dtype)
        return sc.reduce(per_example)
