"""What a retriever and every stage may use while a system runs: the task, the shared corpus index, run settings,
and the services the running pipeline offers to a stage that needs another retrieval (an adaptive expander's judge).

Stages and retrievers never import the pipeline: what they need from it comes in here (`services`), so the layers
hold — plugins sit below the pipeline that runs them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from rich.console import Console

if TYPE_CHECKING:
    import numpy as np

    from bench.data.task import Split, TaskData
    from bench.index import Index, VectorStore
    from bench.systems.records import Candidates


class Services(Protocol):
    """What the running pipeline offers a stage (bench/systems/pipeline.py implements it)."""

    def retrieve(self, system: str, split: Split, depth: int, expansions: list[list[str]] | None = None
                 ) -> Candidates:
        """The fused candidates of `split` by the plain retriever `system` (no expander, no re-ranker), its queries
        as written or replaced by `expansions` (one list of texts per query), on the run's task and corpus."""


@dataclass
class RunContext:
    """The task, the shared corpus index and the run's settings.

    `index` and `corpus_embeddings` are None for a ranking retriever (bm25), which needs no corpus index.
    `corpus_embeddings` is the index's vector store (bench/index): `gather(rows)` / `[rows]` read normalised
    vectors; the memory-mapped store of a large text corpus is never held whole (an ndarray is accepted too).
    `recipe` is the run as `bench cache verify --fix` would replay it: given to every cache entry the run writes.
    """

    task: TaskData
    corpus_embeddings: VectorStore | np.ndarray | None
    index: Index | None
    seed: int = 0
    device: str = "auto"
    retrain: bool = False
    console: Console = field(default_factory=lambda: Console(stderr=True))
    extra: dict[str, Any] = field(default_factory=dict)  # recorded under `extra` in the result
    recipe: Mapping[str, Any] | None = None
    services: Services | None = None
