"""Shared, vectorised machinery of score-based fusion: per (query, document) reduction over the m lists."""

from __future__ import annotations

import numpy as np

from bench.systems.records import Candidates, PerVectorLists, group_slots


def reduce_by_document(lists: PerVectorLists, values: np.ndarray, how: str, depth: int) -> Candidates:
    """Fuse by reducing `values` (n, m, k), one per list entry, over the entries of the same document of a query.

    how = "sum" or "max". Entries with row < 0 are ignored. The fused list is sorted by score desc, then by the lower
    corpus row, and cut to `depth`. No Python loop over queries or documents: one lexsort over n·m·k entries."""
    n, m, k = lists.shape
    rows = lists.rows.reshape(n, m * k)
    vals = np.asarray(values, dtype=np.float64).reshape(n, m * k)
    q = np.repeat(np.arange(n, dtype=np.int64), m * k)
    r = rows.ravel()
    v = vals.ravel()
    keep = r >= 0
    q, r, v = q[keep], r[keep], v[keep]
    if len(r) == 0:
        return Candidates.empty(n, depth)
    order = np.lexsort((r, q))
    q, r, v = q[order], r[order], v[order]
    start = np.ones(len(r), dtype=bool)
    start[1:] = (q[1:] != q[:-1]) | (r[1:] != r[:-1])
    idx = np.flatnonzero(start)
    reducer = np.add if how == "sum" else np.maximum
    fused = reducer.reduceat(v, idx)
    uq, ur = q[idx], r[idx]
    # lay the unique documents of each query out in a (n, width) table, then keep each row's top `depth`, sorted by
    # the float32 score the list will carry: two sums that round to the same float32 are a tie (lower row first)
    order, slot, width = group_slots(uq, n)
    table_rows = np.full((n, width), -1, dtype=np.int64)
    table_scores = np.full((n, width), -np.inf, dtype=np.float64)
    table_rows[uq[order], slot] = ur[order]
    table_scores[uq[order], slot] = fused[order]
    return Candidates.from_unsorted(table_rows, table_scores, depth)


def ranks(lists: PerVectorLists) -> np.ndarray:
    """1-based rank of every entry within its list, float64 (n, m, k)."""
    n, m, k = lists.shape
    return np.broadcast_to(np.arange(1, k + 1, dtype=np.float64), (n, m, k))
