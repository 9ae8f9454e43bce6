"""What happens around training steps: validation (keeping the best weights), logging, resumable checkpoints.

A hook sees the trainer after every optimiser step (`after_step`) and at the start and end of training; whatever it
must remember across an interruption it returns from `state_dict`, which goes into the resumable checkpoint.
Validation runs on every process (the same held-out queries, so every process keeps the same best weights);
logging and checkpoint writes run on rank 0 only.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from rich.console import Console

from bench.errors import BenchError
from bench.progress import STDERR, make_progress


class Trainer(Protocol):
    """What a hook sees of the trainer (bench/train/loop.py): settings, progress, validation and its state."""

    cfg: Any
    console: Console | None
    objective: Any
    strategy: Any
    start_step: int
    val_ex: Any

    def validation_loss(self) -> float: ...

    def weights(self) -> dict[str, torch.Tensor]: ...

    def validation_hook(self) -> Any: ...

    def training_state(self, step: int) -> dict[str, Any]: ...

    @property
    def trainable(self) -> Sequence[torch.Tensor]: ...


@dataclass
class StepRecord:
    """One finished optimiser step: `step` counts steps done (1-based); `entry` is its history line at eval steps."""

    step: int
    loss: float
    p_predicted: float
    lr: float
    is_eval: bool
    entry: dict[str, float] = field(default_factory=dict)


class Hook:
    def on_start(self, trainer: Trainer) -> None:
        pass

    def after_step(self, trainer: Trainer, rec: StepRecord) -> None:
        pass

    def on_end(self, trainer: Trainer) -> None:
        pass

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


class Validation(Hook):
    """At eval steps: the validation loss (as at inference, fixed targets and negatives); keeps the best weights."""

    def __init__(self) -> None:
        self.best_val = math.inf
        self.best_step = -1
        self.best_state: dict[str, torch.Tensor] | None = None

    def after_step(self, trainer: Trainer, rec: StepRecord) -> None:
        if not rec.is_eval or trainer.val_ex is None:
            return
        val = trainer.validation_loss()
        rec.entry["val_loss"] = val
        if val < self.best_val:
            self.best_val, self.best_step = val, rec.step
            self.best_state = trainer.weights()

    def state_dict(self) -> dict[str, Any]:
        return {"best_val": self.best_val, "best_step": self.best_step, "best_state": self.best_state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best_val, self.best_step, self.best_state = state["best_val"], state["best_step"], state["best_state"]


class Logging(Hook):
    """The training history (mean train loss since the last entry, p, lr, val loss) and progress output (rank 0)."""

    def __init__(self) -> None:
        self.history: list[dict[str, float]] = []
        self.window: list[float] = []
        self.ema: float | None = None
        self.progress: Any = None
        self.bar: Any = None
        self.t0 = time.perf_counter()

    def on_start(self, trainer: Trainer) -> None:
        self.t0 = time.perf_counter()
        if trainer.strategy.is_main:
            self.console = trainer.console or STDERR
            self.label = "train AMER" if trainer.objective.autoregressive else "train Single-Query"
            self.progress = make_progress(self.console)
            self.progress.start()
            self.bar = self.progress.add_task(self.label, total=trainer.cfg.steps, completed=trainer.start_step,
                                              status="")

    def after_step(self, trainer: Trainer, rec: StepRecord) -> None:
        self.window.append(rec.loss)
        self.ema = rec.loss if self.ema is None else 0.98 * self.ema + 0.02 * rec.loss
        if rec.is_eval:
            entry = {"step": rec.step, "train_loss": float(np.mean(self.window)), "p_predicted": rec.p_predicted,
                     "lr": rec.lr, **rec.entry}
            self.window = []
            self.history.append(entry)
        if self.progress is None:
            return
        best = trainer.validation_hook()
        best_text = f" · val best {best.best_val:.3f}@{best.best_step}" if best and best.best_step > 0 else ""
        sampling = f" · p {rec.p_predicted:.2f}" if trainer.objective.autoregressive else ""
        status = f"loss {self.ema:.3f}{sampling}{best_text}"
        self.progress.update(self.bar, advance=1, status=status)
        steps = trainer.cfg.steps
        if not self.console.is_terminal and rec.step % max(1, steps // 10) == 0 and rec.step < steps:  # the last:
            # the progress's own line when the phase ends (bench/progress.py)
            self.console.print(f"{self.label}: step {rec.step}/{steps} · {status} · "
                               f"{time.perf_counter() - self.t0:.0f} s", highlight=False)

    def on_end(self, trainer: Trainer) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None

    def state_dict(self) -> dict[str, Any]:
        return {"history": self.history, "window": self.window, "ema": self.ema}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.history, self.window, self.ema = state["history"], state["window"], state["ema"]


class Checkpointing(Hook):
    """Every `every` steps, the whole training state (model, optimiser, scheduler, generators, step, hooks) to
    `path`, written atomically with a manifest (bench.storage.cache.write_entry) by rank 0; removed when training
    ends."""

    def __init__(self, path: Path, every: int) -> None:
        self.path = Path(path)
        self.every = every

    def on_start(self, trainer: Trainer) -> None:
        """Refuse, before the first step, a disk without room for what training writes: the training state (weights,
        AdamW's two moments, the best weights) and the checkpoint (the weights again)."""
        if self.every <= 0 or not trainer.strategy.is_main:
            return
        from bench.storage.preflight import check_free_space

        weights = sum(t.numel() * t.element_size() for t in trainer.trainable)
        check_free_space(self.path.parent, 5 * weights, f"training state and checkpoint ({self.path.parent})")

    def after_step(self, trainer: Trainer, rec: StepRecord) -> None:
        if self.every <= 0 or rec.step % self.every or rec.step >= trainer.cfg.steps:
            return
        if trainer.strategy.is_main:
            save_training_state(self.path, trainer.training_state(rec.step))
        trainer.strategy.barrier()

    def on_end(self, trainer: Trainer) -> None:
        if trainer.strategy.is_main:
            remove_training_state(self.path)


def save_training_state(path: Path, state: dict[str, Any]) -> None:
    from bench.storage.cache import write_entry
    from bench.storage.space import nbytes_of

    write_entry(path, lambda tmp: torch.save(state, tmp), packages=("torch",),
                info={"kind": "training state", "step": state["step"]}, need=nbytes_of(state) + (64 << 10))


def load_training_state(path: Path) -> dict[str, Any] | None:
    """The saved state, or None when there is none; a damaged file is set aside (quarantined) and None returned."""
    from bench.storage.cache import report_and_quarantine, verify_entry

    if not path.exists():
        return None
    # The file is renamed into place complete (atomic); its manifest follows, so a kill between the two leaves a
    # good state without a manifest: accept it, verify it when the manifest is there.
    problem = verify_entry(path, require_manifest=False)
    if problem is None:
        try:
            return torch.load(path, map_location="cpu", weights_only=False)
        except Exception as exc:  # a damaged pickle: start over rather than crash
            problem = f"unreadable ({type(exc).__name__})"
    report_and_quarantine(path, problem, what="training from the start")
    return None


def remove_training_state(path: Path) -> None:
    from bench.storage.cache import remove_entry

    try:
        remove_entry(path)
    except (OSError, BenchError):
        pass
