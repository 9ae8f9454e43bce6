"""`rand1`: Single-Query's objective — one vector per query, InfoNCE on one target drawn at random per step."""

from __future__ import annotations

import numpy as np
import torch

from bench.registry import register_objective
from bench.train.loss import matched_infonce
from bench.train.objectives import LossInputs, Objective


@register_objective("rand1", description="Single-Query: InfoNCE on one answer drawn at random per example and step")
class Rand1(Objective):
    """Rand1LH (Wang et al. 2026, "Training Dense Retrievers with Multiple Positive Passages", arXiv 2602.12727):
    the positive of a step is one of the example's answers drawn uniformly (the first of its targets in the sampled
    random order), and

        L = −(1/B) Σ_b log [ exp(q_b·y_b / τ) / Σ_{c∈C} exp(q_b·c / τ) ]

    with C the batch's positives plus one random negative per positive: matched InfoNCE with M = T = 1."""

    autoregressive = False

    def select(self, rows: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return rows[:, :1], mask[:, :1]

    def loss(self, batch: LossInputs) -> torch.Tensor:
        loss, _ = matched_infonce(batch.preds, batch.positives, batch.negatives, batch.tau, batch.mask,
                                  reduction=batch.reduction, dist=batch.dist)
        return loss
