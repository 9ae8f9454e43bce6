"""Every training default, declared once.

`TrainParams` holds what the user sets with `-r key=value` (the retrievers' parameter dataclasses inherit it, so
`bench list retrievers` shows these very defaults), `SamplingParams` the scheduled-sampling settings that only AMER
takes, and `TrainConfig` adds what a run decides (objective, seed, device, distribution) to both. Nothing else in
the package types a training default: `TrainConfig.from_params` copies fields by name.

A training *recipe* (`recipe=harness`, the default, or `recipe=reference`: the reference implementation's training
procedure, docs/fidelity.md "Training") gives the parameters in `RECIPES` their values; each is also a parameter of
its own, whose default `None` means "the recipe's" and whose explicit value wins over the recipe. The trainer reads
the resolved values (`resolve_recipe`), and every result records them (`retriever_info.training_recipe`).
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
FEEDBACKS = ("normalised", "raw")  # what AMER feeds back of its previous output: the unit vector or the raw projection
POSITIVES = ("random", "first")  # which gold document of an answer cluster is the positive
NEGATIVE_MODES = ("fresh", "fixed")  # negatives redrawn every batch, or drawn once per example and kept
BATCHINGS = ("padded", "majority")  # every answer count padded and masked, or each batch keeps its modal count

# What each recipe sets (the values a recipe parameter left at None takes). `harness` is the harness's own training,
# `reference` the reference implementation's (timchen0618/amer; facts in docs/fidelity.md, rows T1–T9): the ramp
# multiplier and clip of its example script (`scripts/single_run.sh`: srm 10, clip 5; its synthetic config uses 1 and
# 1, one flag away: -r srm=1 -r clip=1), one-label steps mixed in, the raw output fed back, the first gold document,
# negatives fixed per example, batches of one answer count, AdamW's ε 1e-6. Learning rate, batch, warm-up and τ are
# not set: warm-up 0.05, τ 0.05 and batch 128 (its synthetic config's) are already the harness's, and its lr (5e-5 for a
# pretrained 1B LM) is not one for the tiny random backbone (the harness's 1.5e-3 is kept; -r lr= sets another).
RECIPES: dict[str, dict[str, Any]] = {
    "harness": {"srm": 1.0, "one_label": False, "feedback": "normalised", "clip": 1.0, "positive": "random",
                "negatives": "fresh", "batching": "padded", "eps": 1e-8},
    "reference": {"srm": 10.0, "one_label": True, "feedback": "raw", "clip": 5.0, "positive": "first",
                  "negatives": "fixed", "batching": "majority", "eps": 1e-6},
}
_CHOICES = {"feedback": FEEDBACKS, "positive": POSITIVES, "negatives": NEGATIVE_MODES, "batching": BATCHINGS}


def resolve_recipe(params: Any) -> dict[str, Any]:
    """The recipe and the value of each of its parameters that `params` has: the explicit one, else the recipe's."""
    recipe = getattr(params, "recipe", "harness")
    names = {f.name for f in dataclasses.fields(params)}
    return {"recipe": recipe, **{k: (getattr(params, k) if getattr(params, k) is not None else v)
                                 for k, v in RECIPES[recipe].items() if k in names}}


def _check_recipe_fields(params: Any) -> None:
    if params.recipe not in RECIPES:
        raise ValueError(f"recipe must be one of {', '.join(RECIPES)}, got {params.recipe!r}")
    names = {f.name for f in dataclasses.fields(params)}
    for name, choices in _CHOICES.items():
        value = getattr(params, name, None) if name in names else None
        if value is not None and value not in choices:
            raise ValueError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    for name in ("srm", "clip", "eps"):
        value = getattr(params, name, None) if name in names else None
        if value is not None and value <= 0:
            raise ValueError(f"{name} must be > 0, got {value}")


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
    recipe: str = "harness"  # harness | reference: the values of the parameters below left at None (RECIPES)
    clip: float | None = None  # gradient-norm clip; None = the recipe's (harness 1.0, reference 5.0)
    eps: float | None = None  # AdamW's ε; None = the recipe's (harness 1e-8, reference 1e-6)
    positive: str | None = None  # random | first gold document of a cluster; None = the recipe's (random, first)
    negatives: str | None = None  # fresh | fixed per example; None = the recipe's (fresh, fixed)
    batching: str | None = None  # padded | majority answer count per batch; None = the recipe's (padded, majority)
    weight_decay: float = 0.01
    val_fraction: float = 0.1
    eval_every: int = 100
    reduction: str = "example"
    grad_accum: int = 1
    checkpoint_every: int = field(default=500, metadata={"identity": False})  # not in system names: no effect
    precision: str = "auto"  # GPU autocast: auto (bf16 if supported, else fp16) | bf16 | fp16 | fp32

    def __post_init__(self) -> None:
        positive(self, steps=self.steps, batch_size=self.batch_size, lr=self.lr, tau=self.tau,
                 eval_every=self.eval_every, grad_accum=self.grad_accum)
        _check_recipe_fields(self)
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
    """AMER's scheduled sampling: feed its own previous prediction with p = min(cap, srm·step/total) (or an
    ablation), and what else only AMER's training has: one-label steps mixed in, and what is fed back.

    `srm`, `one_label` and `feedback` left at None take the recipe's value (`RECIPES`): the ramp's multiplier;
    after every AMER step one step on one random target and its negative per query (the learning-rate schedule not
    stepped for it); and whether the fed-back vector is the `normalised` output or the `raw` projection (at
    inference too: it is part of the model)."""

    sampling: str = "scheduled"  # scheduled (p = min(cap, srm·step/total)) | predicted (p = 1) | teacher (p = 0)
    sampling_cap: float = SAMPLING_CAP
    srm: float | None = None  # ramp multiplier; None = the recipe's (harness 1, reference 10)
    one_label: bool | None = None  # a one-label step after every AMER step; None = the recipe's (off, on)
    feedback: str | None = None  # normalised | raw; None = the recipe's (normalised, raw)

    def __post_init__(self) -> None:
        if self.sampling not in SAMPLING_MODES:
            raise ValueError(f"sampling must be one of {', '.join(SAMPLING_MODES)}, got {self.sampling!r}")
        if not 0 <= self.sampling_cap <= 1:
            raise ValueError(f"sampling_cap must be in [0, 1], got {self.sampling_cap}")
        if self.srm is not None and self.srm <= 0:
            raise ValueError(f"srm must be > 0, got {self.srm}")
        if self.feedback is not None and self.feedback not in FEEDBACKS:
            raise ValueError(f"feedback must be one of {', '.join(FEEDBACKS)}, got {self.feedback!r}")


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

    def recipe_values(self) -> dict[str, Any]:
        """The recipe and each of its parameters' values for this run (`resolve_recipe`)."""
        return resolve_recipe(self)

    @classmethod
    def from_params(cls, params: Any, **run: Any) -> TrainConfig:
        """The config of a run from any params dataclass that has (some of) these fields, plus run settings."""
        names = {f.name for f in dataclasses.fields(cls)}
        values = {f.name: getattr(params, f.name) for f in dataclasses.fields(params) if f.name in names}
        return cls(**{**values, **run})
