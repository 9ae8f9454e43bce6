"""Training objectives, one file each, selected by name (`TrainConfig.objective`).

An objective says how many vectors the model emits while training, which of an example's sampled targets it
trains on, and the loss of a batch. It registers itself with `@register_objective(name, description=...)`
(bench.registry) in its own module; the objectives registry imports every module of this package on first lookup,
so a new objective is one new file here (`bench list objectives` shows it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import torch

from bench.errors import BenchError
from bench.registry import OBJECTIVES, register_objective
from bench.train.loss import Collective

if TYPE_CHECKING:
    from bench.train.config import TrainConfig

@dataclass
class LossInputs:
    """One (micro-)batch as an objective sees it: predictions, targets and negatives, and the settings of the loss."""

    preds: torch.Tensor  # (B, M, d), L2-normalised
    positives: torch.Tensor  # (B, T, d)
    negatives: torch.Tensor  # (B, T, d), one per positive
    mask: torch.Tensor  # (B, T) True for real targets
    tau: float
    reduction: str
    dist: Collective | None = None
    stop_logits: torch.Tensor | None = None  # (B, M) from a stop head (bench/models/stop_head.py), else None


class Objective:
    """Base class: subclasses set `name`, `autoregressive` and implement `loss`."""

    name: ClassVar[str] = ""
    autoregressive: ClassVar[bool] = True  # True: one prediction per target (AMER); False: one vector per query

    def __init__(self, cfg: TrainConfig | None = None) -> None:
        self.cfg = cfg  # the run's settings, for objectives that have their own (None: the defaults)

    def n_predictions(self, n_targets: int) -> int:
        """How many vectors the model emits per example while training, given the most targets of an example."""
        return n_targets if self.autoregressive else 1

    def select(self, rows: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The targets trained on, from (B, T) sampled rows in random order with real ones first (default: all)."""
        return rows, mask

    def loss(self, batch: LossInputs) -> torch.Tensor:
        raise NotImplementedError


def objective_names() -> list[str]:
    return sorted(OBJECTIVES.all())


def get_objective(name: str, cfg: TrainConfig | None = None) -> Objective:
    """A fresh instance of the objective registered as `name`, reading its settings from `cfg` (None: defaults);
    ValueError naming the known ones otherwise."""
    try:
        meta, _ = OBJECTIVES.get(name)
    except BenchError:
        raise ValueError(f"objective must be one of {', '.join(objective_names())}, got {name!r}") from None
    return meta.factory(cfg)  # type: ignore[no-any-return]


__all__ = ["LossInputs", "Objective", "get_objective", "objective_names", "register_objective"]
