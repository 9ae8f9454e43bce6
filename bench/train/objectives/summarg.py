"""`summarg`: SumMargLH — Single-Query trained on the summed marginal likelihood of a query's positives
(Wang, Tang, Zhang, Guo & Bi 2026, "Training Dense Retrievers with Multiple Positive Passages", arXiv 2602.12727)."""

from __future__ import annotations

import torch

from bench.registry import register_objective
from bench.train.objectives import LossInputs, Objective
from bench.train.objectives.joint import multi_positive_scores


@register_objective(
    "summarg",
    description="Single-Query, multi-positive: the marginal likelihood of any answer (log of the summed probabilities)",
)
class SumMargLH(Objective):
    """SumMargLH (Wang et al. 2026, arXiv 2602.12727): the probability that the retrieved candidate is *any* of the
    positives, one softmax over the batch's candidate set C:

        ℓ_b = −log [ Σ_{p∈P_b} exp(s(q_b, p)/τ) / Σ_{c∈C} exp(s(q_b, c)/τ) ]

    L = (1/B) Σ_b ℓ_b (reduction="example") or Σ_b |P_b|·ℓ_b / Σ_b |P_b| (reduction="target"). The gradient goes
    to each positive in proportion to its current share of the positives' mass, so the loss is satisfied by one
    positive alone. With one positive per example it is InfoNCE (Rand1LH's loss)."""

    autoregressive = False

    def loss(self, batch: LossInputs) -> torch.Tensor:
        sc = multi_positive_scores(batch)
        per_example = torch.logsumexp(sc.logits, dim=1) - torch.logsumexp(sc.own, dim=1)
        return sc.reduce(per_example)
