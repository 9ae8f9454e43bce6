"""`matched-stop`: AMER with a learned stop — matched InfoNCE in which each example's answers are matched to its
*first* predictions, plus a stop head's binary cross-entropy against the number of answers
(bench/models/stop_head.py)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from bench.registry import register_objective
from bench.train.loss import Collective, matched_infonce
from bench.train.objectives import LossInputs, Objective


def prefix_matched_infonce(preds: torch.Tensor, positives: torch.Tensor, negatives: torch.Tensor, tau: float,
                           target_mask: torch.Tensor, reduction: str = "example",
                           dist: Collective | None = None) -> torch.Tensor:
    """`bench.train.loss.matched_infonce` with `prefix=True`: the T_b targets of example b are matched, by the
    Hungarian algorithm, to its first T_b predictions only (same candidates C, same ℓ_b(i, j), same reductions):

        L_b = min over bijections π: {1..T_b} → {1..T_b} of Σ_j ℓ_b(π(j), j)

    A model that stops after c vectors must have put the c answers in those c vectors; with plain matching, a query
    with 2 answers may have them at positions 3 and 5 of 5, which a stop after 2 would lose."""
    loss, _ = matched_infonce(preds, positives, negatives, tau, target_mask, reduction=reduction, dist=dist,
                              prefix=True)
    return loss


@register_objective(
    "matched-stop",
    description="AMER with a learned stop: prefix-matched InfoNCE plus the stop head's loss",
)
class MatchedStop(Objective):
    """L = L_prefix + λ · L_stop. L_prefix is `prefix_matched_infonce`: matched InfoNCE (bench/train/loss.py) with
    example b's T_b answers matched to its first T_b predictions. For stop logits z_bi (position i = 1..M of example
    b, M the batch's most targets), T_b the example's number of sampled targets (one per answer cluster),
    y_bi = 1[i < T_b] ("another answer remains") and w = `stop_miss_weight`:

        L_stop = (1/B) Σ_b (1/M) Σ_i −[w · y_bi · log σ(z_bi) + (1 − y_bi) · log(1 − σ(z_bi))]

    i.e. after vector i the head predicts whether another answer remains. Positions past T_b are trained to 0 too,
    so a model that overshoots learns to stop. w > 1 makes stopping early (a lost answer) cost w times more than
    going on (one more vector searched), which moves the head's decision toward going on where it is unsure —
    near the boundary between two counts. λ = `stop_weight` and w come from the run's
    TrainConfig (bench/train/config.py, StopParams). Under DDP B counts every process's examples. The model must
    be a StopQueryEncoder (LossInputs.stop_logits set by the trainer)."""

    autoregressive = True

    def loss(self, batch: LossInputs) -> torch.Tensor:
        from bench.models.stop_head import stop_targets  # lazily: the model package pulls in transformers
        from bench.train.config import StopParams

        settings = self.cfg if self.cfg is not None else StopParams()
        logits = batch.stop_logits
        if logits is None:
            raise ValueError("objective matched-stop needs stop logits: train a StopQueryEncoder "
                             "(bench/models/stop_head.py)")
        loss = prefix_matched_infonce(batch.preds, batch.positives, batch.negatives, batch.tau, batch.mask,
                                      reduction=batch.reduction, dist=batch.dist)
        m = batch.preds.shape[1]
        miss = torch.tensor(float(settings.stop_miss_weight), device=logits.device, dtype=logits.dtype)
        bce = F.binary_cross_entropy_with_logits(logits[:, :m], stop_targets(batch.mask, m), reduction="none",
                                                 pos_weight=miss)
        norm = torch.tensor(float(bce.shape[0]), device=bce.device)
        if batch.dist is not None:
            norm = batch.dist.sum(norm)
        return loss + float(settings.stop_weight) * bce.mean(dim=1).sum() / norm.to(bce.dtype)
