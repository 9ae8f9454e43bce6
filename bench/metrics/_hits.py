"""Shared core of the cluster metrics: at which rank each answer cluster is first hit."""

from __future__ import annotations

import numpy as np

from bench.data.task import Targets
from bench.errors import BenchError

NOT_FOUND = np.iinfo(np.int64).max


def cluster_first_rank(ranking: np.ndarray, targets: Targets) -> np.ndarray:
    """For every cluster of every query (flattened in query order), the 0-based rank of its first retrieved doc.

    `ranking` is (n_queries, depth) of corpus rows, best first, -1 for empty slots (a list shorter than depth).
    Clusters never retrieved get NOT_FOUND. Vectorised: one sort of the ranking keys, one searchsorted of the golds.
    """
    ranking = np.asarray(ranking)
    if ranking.ndim != 2 or ranking.shape[0] != targets.n_queries:
        raise BenchError(f"ranking has shape {ranking.shape}, expected ({targets.n_queries}, depth)")
    n, depth = ranking.shape
    width = int(max(ranking.max(initial=0), targets.doc.max(initial=0))) + 1
    valid = ranking.ravel() >= 0
    r_query = np.repeat(np.arange(n, dtype=np.int64), depth)[valid]
    r_pos = np.tile(np.arange(depth, dtype=np.int64), n)[valid]
    r_key = r_query * width + ranking.ravel()[valid].astype(np.int64)
    order = np.lexsort((r_pos, r_key))
    r_key, r_pos = r_key[order], r_pos[order]
    first = np.ones(len(r_key), dtype=bool)
    first[1:] = r_key[1:] != r_key[:-1]  # a doc listed twice counts at its best rank
    r_key, r_pos = r_key[first], r_pos[first]

    g_key = targets.query * width + targets.doc
    at = np.searchsorted(r_key, g_key)
    at_clipped = np.minimum(at, max(len(r_key) - 1, 0))
    found = (at < len(r_key)) & (r_key[at_clipped] == g_key) if len(r_key) else np.zeros(len(g_key), bool)
    doc_rank = np.where(found, r_pos[at_clipped] if len(r_key) else 0, NOT_FOUND)

    offsets = np.concatenate([[0], np.cumsum(targets.n_clusters)[:-1]]).astype(np.int64)
    cluster_id = offsets[targets.query] + targets.cluster
    out = np.full(int(targets.n_clusters.sum()), NOT_FOUND, dtype=np.int64)
    np.minimum.at(out, cluster_id, doc_rank)
    return out


def clusters_hit(ranking: np.ndarray, targets: Targets, k: int) -> np.ndarray:
    """Per query: how many of its answer clusters have a doc in the top k."""
    if k <= 0:
        raise BenchError(f"k must be > 0, got {k}")
    first = cluster_first_rank(ranking, targets)
    owner = np.repeat(np.arange(targets.n_queries), targets.n_clusters)
    return np.bincount(owner, weights=(first < k), minlength=targets.n_queries)
