"""Score normalisation per ranked list, applied before score-based fusion where scores of different scales meet.

- none:   s
- minmax: (s − min_L) / (max_L − min_L)          (a list whose scores are all equal maps to 1)
- zscore: (s − mean_L) / std_L                   (population std; a constant list maps to 0)

min, max, mean and std are over the scored entries of the list L (padding excluded). Source: Fox & Shaw, "Combination
of multiple searches", TREC-2 (1994) for min-max ("normalised" CombSUM); z-score as in ranx's `zmuv` normalisation
(Bassani 2022) and Montague & Aslam, "Relevance score normalization for metasearch", CIKM 2001.
"""

from __future__ import annotations

import numpy as np

from bench.errors import BenchError
from bench.systems.records import PerVectorLists

NORMALISATIONS = ("none", "minmax", "zscore")


def normalise_scores(lists: PerVectorLists, how: str) -> np.ndarray:
    """The scores of `lists` normalised per list, float64 (n, m, k); padding stays -inf."""
    if how not in NORMALISATIONS:
        raise BenchError(f"unknown score normalisation {how!r}; known: {', '.join(NORMALISATIONS)}")
    s = lists.scores.astype(np.float64)
    valid = lists.rows >= 0
    if how == "none":
        return np.where(valid, s, -np.inf)
    count = valid.sum(axis=2, keepdims=True)
    safe = np.where(valid, s, 0.0)
    if how == "minmax":
        lo = np.where(valid, s, np.inf).min(axis=2, keepdims=True)
        hi = np.where(valid, s, -np.inf).max(axis=2, keepdims=True)
        span = hi - lo
        with np.errstate(invalid="ignore", divide="ignore"):
            out = np.where(span > 0, (safe - lo) / np.where(span > 0, span, 1.0), 1.0)
    else:
        mean = safe.sum(axis=2, keepdims=True) / np.maximum(count, 1)
        var = (np.where(valid, (safe - mean) ** 2, 0.0)).sum(axis=2, keepdims=True) / np.maximum(count, 1)
        std = np.sqrt(var)
        out = np.where(std > 0, (safe - mean) / np.where(std > 0, std, 1.0), 0.0)
    return np.where(valid, out, -np.inf)
