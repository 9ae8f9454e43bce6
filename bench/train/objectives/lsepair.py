"""`lsepair`: LSEPair — Single-Query trained with a log-sum-exp over every (positive, negative) pair
(Wang, Tang, Zhang, Guo & Bi 2026, "Training Dense Retrievers with Multiple Positive Passages", arXiv 2602.12727;
the paper's most robust objective)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from bench.registry import register_objective
from bench.train.objectives import LossInputs, Objective
from bench.train.objectives.joint import multi_positive_scores


@register_objective(
    "lsepair",
    description="Single-Query, multi-positive: a log-sum-exp over every (positive, negative) pair",
)
class LSEPair(Objective):
    """LSEPair (Wang et al. 2026, arXiv 2602.12727): a smooth maximum over all pairs of one positive p ∈ P_b and one
    negative n ∈ N_b = C \\ P_b of the batch's candidate set C:

        ℓ_b = log [ 1 + Σ_{p∈P_b} Σ_{n∈N_b} exp((s(q_b, n) − s(q_b, p))/τ) ]

    computed as softplus(logsumexp_n s_n/τ + logsumexp_p (−s_p/τ)), since the double sum factorises.
    L = (1/B) Σ_b ℓ_b (reduction="example") or Σ_b |P_b|·ℓ_b / Σ_b |P_b| (reduction="target"). Positives do not
    compete with each other (unlike JointLH); the hardest pairs dominate the gradient. With one positive per example
    it is InfoNCE (Rand1LH's loss): log(1 + Σ_n e^{(s_n − s_p)/τ}) = −log(e^{s_p/τ} / Σ_{c∈C} e^{s_c/τ})."""

    autoregressive = False

    def loss(self, batch: LossInputs) -> torch.Tensor:
        sc = multi_positive_scores(batch)
        neg = torch.logsumexp(sc.negatives_only(), dim=1)
        pos = torch.logsumexp(-sc.own.masked_fill(~sc.mask, float("inf")), dim=1)
        return sc.reduce(F.softplus(neg + pos))
