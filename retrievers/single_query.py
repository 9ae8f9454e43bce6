"""Single-Query: the AMER query encoder with one output vector, the single-embedding baseline (DESIGN §4).

Same backbone, projections, training loop and checkpoints as AMER (retrievers/amer.py); each example contributes one
positive per step, drawn at random among its answer clusters, to an InfoNCE over the batch's positives and one
random negative per positive.
"""

from __future__ import annotations

from dataclasses import dataclass

from bench.registry import register_retriever
from retrievers.amer import QueryEncoderParams, TrainedQueryEncoder


@dataclass(frozen=True)
class SingleQueryParams(QueryEncoderParams):
    """The shared model and training settings; Single-Query adds none."""


@register_retriever(
    "single-query",
    description="Single-Query: the AMER backbone emitting one query vector, trained with InfoNCE on one randomly "
                "drawn target per example and step (trains on first use, then reuses its checkpoint)",
    kind="trained",
    params=SingleQueryParams,
)
class SingleQueryRetriever(TrainedQueryEncoder):
    objective = "single"
