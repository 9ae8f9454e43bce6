"""Round-robin merge with de-duplication: how AMER's m per-vector lists become one ranking (the default fuser)."""

from __future__ import annotations

import numpy as np

from bench.errors import BenchError
from bench.registry import register_fuser
from bench.systems.records import Candidates, PerVectorLists
from bench.systems.stages import Fuser


def round_robin_merge(lists: np.ndarray, k: int) -> np.ndarray:
    """Merge m ranked lists per query into one list of length k.

    `lists` is (n_queries, m, depth) of doc ids, best first, -1 for empty slots. The merged list reads

        L1[0], L2[0], …, Lm[0], L1[1], L2[1], …, Lm[1], …

    skipping empty slots and any doc already taken, until k docs are taken (fewer if the lists run out: the rest is
    -1). With m = 1 it is the list itself, cut to k. Vectorised over queries.
    """
    lists = np.asarray(lists)
    if lists.ndim != 3:
        raise BenchError(f"round_robin_merge expects (n_queries, m, depth), got shape {lists.shape}")
    if k <= 0:
        raise BenchError(f"k must be > 0, got {k}")
    n, m, depth = lists.shape
    interleaved = lists.transpose(0, 2, 1).reshape(n, depth * m).astype(np.int64)
    # A stable sort puts the first occurrence of each id first among its equals: later ones are duplicates.
    order = np.argsort(interleaved, axis=1, kind="stable")
    ordered = np.take_along_axis(interleaved, order, axis=1)
    dup_sorted = np.zeros_like(ordered, dtype=bool)
    dup_sorted[:, 1:] = ordered[:, 1:] == ordered[:, :-1]
    duplicate = np.empty_like(dup_sorted)
    np.put_along_axis(duplicate, order, dup_sorted, axis=1)
    keep = ~duplicate & (interleaved >= 0)
    slot = np.cumsum(keep, axis=1) - 1
    take = keep & (slot < k)
    rows, cols = np.nonzero(take)
    merged = np.full((n, k), -1, dtype=np.int64)
    merged[rows, slot[rows, cols]] = interleaved[rows, cols]
    return merged


def round_robin(lists: PerVectorLists, depth: int) -> Candidates:
    """Round-robin fusion: the order of `round_robin_merge` (missing lists are skipped like empty slots).

    Round-robin defines an order, not a score; the fused score of the document at merged rank r (1-based) is 1/r,
    so the order survives any tool that sorts a TREC file by score. Ties cannot occur (1/r is strictly decreasing);
    within a round, list j comes before list j+1 — that order, not the corpus row, is the method's tie-break."""
    rows = round_robin_merge(lists.rows, depth)
    scores = np.where(rows >= 0, 1.0 / np.arange(1, depth + 1, dtype=np.float64)[None, :], -np.inf)
    return Candidates(rows, scores.astype(np.float32))


@register_fuser(
    "round-robin",
    description="take the 1st document of each list in turn, then the 2nd, …, skipping duplicates; score 1/rank "
                "(default for multi-vector systems)",
    aliases=("rr", "roundrobin"),
)
class RoundRobinFuser(Fuser):
    def fuse(self, lists: PerVectorLists, depth: int) -> Candidates:
        return round_robin(lists, depth)
