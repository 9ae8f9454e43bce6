"""Every training default, declared once.

`TrainParams` holds what the user sets with `-r key=value` (the retrievers' parameter dataclasses inherit it, so
`bench list retrievers` shows these very defaults), `SamplingParams` the scheduled-sampling settings that only AMER
takes, and `TrainConfig` adds what a run decides (objective, seed, device, distribution) to both. Nothing else in
the package types a training default: `TrainConfig.from_params` copies fields by name.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from bench.params import positive
from bench.registry import OBJECTIVES
from bench.train.schedule import SAMPLING_CAP, SAMPLING_MODES

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
REDUCTIONS = ("example", "target")


@dataclass(frozen=True)
class TrainParams:
    """Optimisation settings shared by every trained query encoder (defaults reach the synthetic headline).

    AdamW β = (0.9, 0.98), linear warm-up over `warmup` of the steps then linear decay (paper, docs/architecture.md §6).
    `batch_size` is the global batch of one optimiser step: under DDP each of N processes takes 1/N of it, and with
    `grad_accum` = A each process runs it in A micro-batches (in-batch negatives then span one micro-batch of every
    process). `reduction` says how the loss averages: `example` (mean over examples of the mean over each example's
    targets, as the reference implementation does) or `target` (mean over all targets of the batch).
    `checkpoint_every` writes a resumable training state every that many steps (0 = never).
    """

    steps: int = 1500  # with lr 1.5e-3: MRECALL@10 ≥ 0.95 in all six synthetic settings (README)
    # the batch shapes the in-batch negatives and so the trained weights: part of a system's name when not default
    batch_size: int = dataclasses.field(default=128, metadata={"identity": True})
    lr: float = 1.5e-3  # 3e-3 and above diverge on synthetic-mlp; 1e-3 needs twice the steps
    tau: float = 0.05
    warmup: float = 0.05
    clip: float = 1.0
    weight_decay: float = 0.01
    val_fraction: float = 0.1
    eval_every: int = 100
    reduction: str = "example"
    grad_accum: int = 1
    checkpoint_every: int = field(default=500, metadata={"identity": False})  # not in system names: no effect
    precision: str = "auto"  # GPU autocast: auto (bf16 if supported, else fp16) | bf16 | fp16 | fp32

    def __post_init__(self) -> None:
        positive(self, steps=self.steps, batch_size=self.batch_size, lr=self.lr, tau=self.tau, clip=self.clip,
                 eval_every=self.eval_every, grad_accum=self.grad_accum)
        if not 0 <= self.warmup < 1:
            raise ValueError(f"warmup must be in [0, 1), got {self.warmup}")
        if not 0 <= self.val_fraction < 1:
            raise ValueError(f"val_fraction must be in [0, 1), got {self.val_fraction}")
        if self.weight_decay < 0 or self.checkpoint_every < 0:
            raise ValueError("weight_decay and checkpoint_every must be ≥ 0")
        if self.reduction not in REDUCTIONS:
            raise ValueError(f"reduction must be one of {', '.join(REDUCTIONS)}, got {self.reduction!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")


@dataclass(frozen=True)
class SamplingParams:
    """AMER's scheduled sampling: feed its own previous prediction with p = min(cap, step/total) (or an ablation)."""

    sampling: str = "scheduled"  # scheduled (p = min(cap, step/total)) | predicted (p = 1) | teacher (p = 0)
    sampling_cap: float = SAMPLING_CAP

    def __post_init__(self) -> None:
        if self.sampling not in SAMPLING_MODES:
            raise ValueError(f"sampling must be one of {', '.join(SAMPLING_MODES)}, got {self.sampling!r}")
        if not 0 <= self.sampling_cap <= 1:
            raise ValueError(f"sampling_cap must be in [0, 1], got {self.sampling_cap}")


@dataclass(frozen=True)
class StopParams:
    """How AMER's learned stop is trained (objective `matched-stop`, bench/train/objectives/stop.py).

    The two kinds of error cost differently: stopping one vector early loses an answer, going on one vector too far
    costs one more search (round-robin still surfaces the answers the other vectors found). `stop_miss_weight`
    weighs the label "another answer remains" in the stop head's cross-entropy accordingly.
    """

    # λ, measured on the planted test (tests/retrievers/test_amer_learned_stop.py, d = 8, tiny backbone): with λ = 1
    # the head reached 94% count accuracy only after 1,500 steps, with λ = 4 after 600; the retrieval loss it shares
    # the gradient with (clipped jointly at 1.0) is several nats larger than the BCE, which λ = 1 leaves too weak a
    # signal
    stop_weight: float = 4.0
    stop_miss_weight: float = 5.0  # weight of "another answer remains" in the BCE (1 = unweighted)

    def __post_init__(self) -> None:
        if self.stop_weight < 0:
            raise ValueError(f"stop_weight must be ≥ 0, got {self.stop_weight}")
        if self.stop_miss_weight <= 0:
            raise ValueError(f"stop_miss_weight must be > 0, got {self.stop_miss_weight}")


@dataclass(frozen=True)
class TrainConfig(TrainParams, SamplingParams, StopParams):
    """One training run: the user's settings plus the objective (a name in bench.train.objectives), seed, device."""

    objective: str = "matched"
    betas: tuple[float, float] = (0.9, 0.98)
    seed: int = 0
    device: str = "cpu"

    def __post_init__(self) -> None:
        TrainParams.__post_init__(self)
        SamplingParams.__post_init__(self)
        StopParams.__post_init__(self)
        if not OBJECTIVES.has(self.objective):  # unknown names fail here, with the known ones listed
            raise ValueError(f"objective must be one of {', '.join(OBJECTIVES.all())}, got {self.objective!r}")

    @classmethod
    def from_params(cls, params: Any, **run: Any) -> TrainConfig:
        """The config of a run from any params dataclass that has (some of) these fields, plus run settings."""
        names = {f.name for f in dataclasses.fields(cls)}
        values = {f.name: getattr(params, f.name) for f in dataclasses.fields(params) if f.name in names}
        return cls(**{**values, **run})
