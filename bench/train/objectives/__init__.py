"""Training objectives, one file each, selected by name (`TrainConfig.objective`).

An objective says how many vectors the model emits while training, which of an example's sampled targets it
trains on, and the loss of a batch. It registers itself with `@register_objective(name)` in its own module; the
modules of this package are imported on first lookup, so a new objective is one new file here.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import torch

from bench.train.loss import Collective

if TYPE_CHECKING:
    from bench.train.config import TrainConfig

_OBJECTIVES: dict[str, type[Objective]] = {}
_loaded = False


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


def register_objective(name: str):  # type: ignore[no-untyped-def]
    """Class decorator: make an Objective selectable by `name`."""

    def deco(cls: type[Objective]) -> type[Objective]:
        cls.name = name
        _OBJECTIVES[name] = cls
        return cls

    return deco


def _load() -> None:
    global _loaded
    if not _loaded:
        for mod in pkgutil.iter_modules(__path__):
            importlib.import_module(f"{__name__}.{mod.name}")
        _loaded = True


def objective_names() -> list[str]:
    _load()
    return sorted(_OBJECTIVES)


def get_objective(name: str, cfg: TrainConfig | None = None) -> Objective:
    """A fresh instance of the objective registered as `name`, reading its settings from `cfg` (None: defaults);
    ValueError naming the known ones otherwise."""
    _load()
    if name not in _OBJECTIVES:
        raise ValueError(f"objective must be one of {', '.join(sorted(_OBJECTIVES))}, got {name!r}")
    return _OBJECTIVES[name](cfg)
