"""Recall@k over answer clusters (answer recall)."""

from __future__ import annotations

import numpy as np

from bench.data.task import Targets
from bench.metrics._hits import clusters_hit
from bench.registry import register_metric


@register_metric("Recall", description="the fraction of the answers with a document in the top k (answer recall)")
def recall_at_k(ranking: np.ndarray, targets: Targets, k: int) -> np.ndarray:
    """Per-query Recall@k: the fraction of a query's m answer clusters hit in the top k.

        Recall@k = h / m,   h = |{clusters with a gold document among the top k}|

    With one gold document per cluster this is the usual document recall.
    """
    hits = clusters_hit(ranking, targets, k)
    return hits / targets.n_clusters
