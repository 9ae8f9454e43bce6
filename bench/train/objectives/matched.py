"""`matched`: AMER's objective — m predictions, matched InfoNCE against the example's unordered targets."""

from __future__ import annotations

import torch

from bench.registry import register_objective
from bench.train.loss import matched_infonce
from bench.train.objectives import LossInputs, Objective


@register_objective(
    "matched",
    description="AMER: matched InfoNCE, the m predictions assigned to the m answers by the Hungarian algorithm",
)
class Matched(Objective):
    """One prediction per answer, emitted autoregressively; loss `bench.train.loss.matched_infonce`
    (docs/architecture.md §6):
    InfoNCE over in-batch targets plus one random negative per positive, each example's predictions assigned to its
    targets by the Hungarian algorithm on the m × m loss matrix."""

    autoregressive = True

    def loss(self, batch: LossInputs) -> torch.Tensor:
        loss, _ = matched_infonce(batch.preds, batch.positives, batch.negatives, batch.tau, batch.mask,
                                  reduction=batch.reduction, dist=batch.dist)
        return loss
