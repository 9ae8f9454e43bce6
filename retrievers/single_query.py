"""Single-Query: the AMER query encoder with one output vector, the single-embedding baseline (docs/architecture.md §6).

Same backbone, projections, training loop and checkpoints as AMER (retrievers/amer.py); each example contributes one
positive per step, drawn at random among its answer clusters, to an InfoNCE over the batch's positives and one
random negative per positive.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bench.registry import register_retriever
from bench.systems.context import RunContext
from retrievers.amer import QueryEncoderParams, TrainedQueryEncoder


@dataclass(frozen=True)
class SingleQueryParams(QueryEncoderParams):
    """The shared model and training settings, plus the training objective: `rand1` (one random positive per step,
    bench/train/objectives/rand1.py) or a multi-positive one over every answer (`joint`, `summarg`, `lsepair`)."""

    objective: str = "rand1"

    def __post_init__(self) -> None:
        QueryEncoderParams.__post_init__(self)
        from bench.train.objectives import get_objective, objective_names

        names = [n for n in objective_names() if not get_objective(n).autoregressive]
        if self.objective not in names:
            raise ValueError(f"objective must be one of {', '.join(names)}, got {self.objective!r}")


@register_retriever(
    "single-query",
    description="Single-Query: the AMER backbone emitting one query vector, trained with InfoNCE on one randomly "
                "drawn target per example and step (trains on first use, then reuses its checkpoint)",
    kind="trained",
    params=SingleQueryParams,
)
class SingleQueryRetriever(TrainedQueryEncoder):
    @property
    def objective(self) -> str:  # type: ignore[override]  # -r objective=rand1|joint|summarg|lsepair
        return str(self.params.objective)

    def key_config(self, ctx: RunContext) -> dict[str, Any]:
        config = super().key_config(ctx)
        config["params"].pop("objective", None)  # already the key's "objective": rand1 checkpoints keep their key
        return config
