"""MRECALL@k: did the top k cover every answer (or, when k < m, at least k answers)?"""

from __future__ import annotations

import numpy as np

from bench.data.task import Targets
from bench.metrics._hits import clusters_hit
from bench.registry import register_metric


@register_metric("MRECALL",
    description="1 when the top k hold a document of every answer (at least k answers when k < m), else 0",
    whole=True)
def mrecall_at_k(ranking: np.ndarray, targets: Targets, k: int) -> np.ndarray:
    """Per-query MRECALL@k over a ranking (n_queries × depth corpus rows, -1 for empty slots).

    For a query with m answer clusters and h = number of clusters with a document in the top k:

        MRECALL@k = 1[h ≥ min(k, m)]

    i.e. with k ≥ m every cluster must be hit; with k < m at least k clusters must be. A cluster is hit by any one
    of its gold documents. Report the mean over queries (×100 in tables).
    """
    hits = clusters_hit(ranking, targets, k)
    return (hits >= np.minimum(k, targets.n_clusters)).astype(np.float64)
