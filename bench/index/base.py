"""The index protocol (what the pipeline and retrievers use), and what the index kinds share: query preparation,
the deterministic order of ties, the record of where and how an index runs."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from bench.errors import BenchError
from bench.index.gpu import GpuPlan
from bench.index.store import VectorStore, l2_normalise

TIE_MARGIN = 8
QUERY_BATCH = 4096

Progress = Callable[[int], None]


@runtime_checkable
class Index(Protocol):
    """What the pipeline and retrievers use: search, its dimension and size, and the vectors it was built from."""

    dim: int
    store: VectorStore
    path: Path | None

    @property
    def ntotal(self) -> int: ...

    def search(self, queries: np.ndarray, k: int, progress: Progress | None = None
               ) -> tuple[np.ndarray, np.ndarray]: ...

    def gather(self, rows: np.ndarray | Sequence[int]) -> np.ndarray: ...

    def describe(self) -> dict[str, Any]: ...


def prepare_queries(queries: np.ndarray, dim: int, k: int) -> np.ndarray:
    if k <= 0:
        raise BenchError(f"k must be > 0, got {k}")
    q = np.asarray(queries, dtype=np.float32)
    if q.ndim != 2 or q.shape[1] != dim:
        raise BenchError(f"query vectors have shape {q.shape}, but the index holds {dim}-dim vectors")
    return l2_normalise(q)



class IndexBase:
    """What every index kind has: its store (the exact vectors), where it runs, and the record of both."""

    store: VectorStore
    dim: int
    path: Path | None = None
    device = "cpu"
    plan: GpuPlan | None = None
    notes: list[str]

    def gather(self, rows: np.ndarray | Sequence[int]) -> np.ndarray:
        """The store's exact vectors of these rows, whatever the index compresses (bench.systems.records
        DocumentVectors): MMR, negatives, diversity."""
        return self.store.gather(rows)

    def _record(self, own: dict[str, Any]) -> dict[str, Any]:
        """`own` (kind, factory, settings), then the store's record, the GPU plan and any notes."""
        out: dict[str, Any] = {**own, **self.store.describe()}
        if self.plan is not None:
            out["gpu"] = self.plan.record()
        if self.notes:
            out["notes"] = list(self.notes)
        return out


def order_ties(d: np.ndarray, i: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sort each row by score descending, then row id ascending.

    Only rows that are not already strictly descending (a tie, or FAISS order off) are sorted: the others are
    already in that order, and skipping them keeps the harness's search as fast as a bare FAISS search."""
    todo = np.flatnonzero((d[:, 1:] >= d[:, :-1]).any(axis=1))
    if len(todo) == 0:
        return d, i
    d, i = d.copy(), i.copy()
    big = np.where(i[todo] < 0, np.iinfo(np.int64).max, i[todo])
    order = np.lexsort((big, -d[todo]), axis=-1)
    d[todo] = np.take_along_axis(d[todo], order, axis=1)
    i[todo] = np.take_along_axis(i[todo], order, axis=1)
    return d, i
