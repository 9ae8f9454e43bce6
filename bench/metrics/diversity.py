"""Target diversity of queries (docs/architecture.md §4): how far apart a query's answers sit in the document encoder's
space.

What is measured, once, here (the pipeline, `bench compare` and `bench plot` only call these functions):

- Target vectors of a query: by default ONE REPRESENTATIVE DOCUMENT PER ANSWER CLUSTER (the cluster's first listed
  gold document, the same one the `oracle` retriever uses), so a query with m answers has m target vectors and its
  diversity measures how far apart its *answers* are. `mode="all"` uses every distinct gold document of the query
  instead (pairs within one answer's cluster then count too, which pulls a query with many passages per answer towards
  "similar"). For synthetic tasks every cluster has one document, so the two modes agree.
- Space: the document embeddings as the index searches them, i.e. L2-normalised outputs of the task's document
  encoder (for synthetic tasks the target vectors themselves, normalised). On unit vectors the Euclidean distance of a
  pair is √(2 − 2·cos); both are reported, since a mean of square roots orders queries slightly differently.
- Per query: the mean over the C(s, 2) pairs of its s target vectors of the cosine similarity, the cosine distance
  (1 − similarity) and the Euclidean distance, and the mean Euclidean distance over the pairs whose distance is not
  zero (duplicate vectors left out, as the reference analysis script does). Undefined (NaN) for a query with fewer
  than 2 target vectors; such queries fall in no bin and not in the low-similarity subset.
- Low-similarity subset, two rules (`LOW_SIM_RULES`): `paper` — mean pairwise cosine similarity at or below its 33rd
  percentile; `reference` — the reference implementation's analysis script: mean pairwise Euclidean distance (zero
  distances left out) strictly above its 3/4 quantile (nearest rank), about the quarter of queries whose answers lie
  farthest apart.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from bench.data.task import Targets
from bench.errors import BenchError

TARGET_MODES = ("representative", "all")
DEFAULT_TARGET_MODE = "representative"
N_BINS = 4
LOW_SIMILARITY_PERCENTILE = 33.0
LOW_SIM_RULES = ("paper", "reference")
REFERENCE_QUANTILE = 0.75
ZERO_DISTANCE = 1e-6  # a pair of unit vectors this close is one vector twice (a duplicate passage)
DISTANCES = ("cosine", "euclidean")
RECORD_KEY = "target_diversity"  # where a run stores its record in RunResult.extra
N_RANDOM_PAIRS = 10_000
HIST_EDGES = np.linspace(-1.0, 1.0, 41)
_BLOCK = 1 << 22  # floats per batched gather (queries × vectors × d)
_DECIMALS = 12  # values are compared after rounding, so float noise never splits queries that are equally diverse


def _rounded(values: np.ndarray) -> np.ndarray:
    return np.round(np.asarray(values, dtype=np.float64), _DECIMALS)


@dataclass
class TargetDiversity:
    """Per-query target diversity of n queries (NaN where a query has fewer than 2 target vectors)."""

    cos_sim: np.ndarray  # mean pairwise cosine similarity
    euclidean: np.ndarray  # mean pairwise Euclidean distance
    n_answers: np.ndarray  # m, the number of answer clusters
    n_vectors: np.ndarray  # target vectors used (m in representative mode)
    mode: str = DEFAULT_TARGET_MODE
    euclidean_nonzero: np.ndarray | None = None  # mean over the pairs at a distance > ZERO_DISTANCE (None: not stored)

    @property
    def cos_dist(self) -> np.ndarray:
        """Mean pairwise cosine distance = 1 − mean pairwise cosine similarity."""
        return 1.0 - self.cos_sim

    def distance(self, by: str = "cosine") -> np.ndarray:
        if by not in DISTANCES:
            raise BenchError(f"diversity distance must be one of {', '.join(DISTANCES)}, got {by!r}")
        return self.cos_dist if by == "cosine" else self.euclidean

    def __len__(self) -> int:
        return len(self.cos_sim)


def target_rows(targets: Targets, mode: str = DEFAULT_TARGET_MODE) -> list[np.ndarray]:
    """The corpus rows whose embeddings are each query's target vectors.

    mode "representative": the first listed gold document of every cluster (m rows for m answers);
    mode "all": every distinct gold document of the query, in increasing row order.
    """
    if mode not in TARGET_MODES:
        raise BenchError(f"target mode must be one of {', '.join(TARGET_MODES)}, got {mode!r}")
    if mode == "representative":
        return targets.representatives()
    width = int(targets.doc.max(initial=0)) + 1
    keys = np.unique(targets.query * width + targets.doc)
    q, d = np.divmod(keys, width)
    counts = np.bincount(q, minlength=targets.n_queries)
    return np.split(d, np.cumsum(counts)[:-1])


def _pair_sims(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For g stacked sets of s vectors (g, s, d): cosine similarity and Euclidean distance of each pair: (g, C(s,2))."""
    v = vectors.astype(np.float64)
    norms = np.linalg.norm(v, axis=2)
    gram = np.einsum("gsd,gtd->gst", v, v)
    iu, ju = np.triu_indices(v.shape[1], k=1)
    dots = gram[:, iu, ju]
    denom = norms[:, iu] * norms[:, ju]
    cos = np.divide(dots, denom, out=np.zeros_like(dots), where=denom > 0)
    sq = norms[:, iu] ** 2 + norms[:, ju] ** 2 - 2.0 * dots
    return cos, np.sqrt(np.maximum(sq, 0.0))


def mean_pairwise_cosine(vectors: np.ndarray) -> np.ndarray:
    """Per set of (n, m, d): the mean cosine similarity over its m(m−1)/2 pairs, mean_{i<j} cos(v_i, v_j); NaN if
    m < 2. Used for the targets of a query (`target_diversity`) and for a multi-vector retriever's own outputs."""
    v = np.asarray(vectors)
    if v.ndim != 3:
        raise BenchError(f"mean_pairwise_cosine expects (n, m, d), got shape {v.shape}")
    if v.shape[1] < 2:
        return np.full(v.shape[0], np.nan)
    cos, _ = _pair_sims(v)
    return cos.mean(axis=1)


def _grouped(rows: list[np.ndarray], embeddings: np.ndarray):  # type: ignore[no-untyped-def]
    """Yield (query indices, pair cosines, pair distances) for blocks of queries with the same number of vectors."""
    sizes = np.array([len(r) for r in rows], dtype=np.int64)
    d = embeddings.shape[1]
    for s in np.unique(sizes):
        if s < 2:
            continue
        members = np.flatnonzero(sizes == s)
        per_block = max(1, _BLOCK // int(s * d))
        for start in range(0, len(members), per_block):
            block = members[start : start + per_block]
            idx = np.stack([rows[i] for i in block])
            cos, euc = _pair_sims(np.asarray(embeddings[idx.ravel()]).reshape(len(block), int(s), d))
            yield block, cos, euc


def target_diversity(targets: Targets, embeddings: Any, mode: str = DEFAULT_TARGET_MODE) -> TargetDiversity:
    """Per-query target diversity: for the s target vectors v_1..v_s of a query (see `target_rows`),

        cos_sim   = mean_{i<j} cos(v_i, v_j)            (mean pairwise cosine similarity)
        cos_dist  = mean_{i<j} (1 − cos(v_i, v_j)) = 1 − cos_sim
        euclidean = mean_{i<j} ‖v_i − v_j‖₂

    `embeddings` are the corpus rows' document embeddings: an array, or a bench.index.VectorStore whose rows are
    gathered by indexing (the pipeline passes the L2-normalised vectors the index searches, never a full copy).
    NaN for queries with s < 2. Queries with the same s are computed together (batched Gram matrices).
    """
    rows = target_rows(targets, mode)
    n = targets.n_queries
    cos_sim = np.full(n, np.nan)
    euclid = np.full(n, np.nan)
    nonzero = np.full(n, np.nan)
    for block, cos, euc in _grouped(rows, embeddings):
        cos_sim[block] = cos.mean(axis=1)
        euclid[block] = euc.mean(axis=1)
        keep = euc > ZERO_DISTANCE
        counts = keep.sum(axis=1)
        sums = np.where(keep, euc, 0.0).sum(axis=1)
        nonzero[block] = np.divide(sums, counts, out=np.full(len(block), np.nan), where=counts > 0)
    return TargetDiversity(cos_sim, euclid, targets.n_clusters.astype(np.int64).copy(),
                           np.array([len(r) for r in rows], dtype=np.int64), mode, nonzero)


def quartile_bins(values: np.ndarray, n_bins: int = N_BINS) -> np.ndarray:
    """Split queries into `n_bins` equal-count bins by a diversity value (quartiles for n_bins = 4).

    Queries are ordered by value, ascending (ties by query position, so the split is deterministic), and the i-th of
    the n defined queries goes to bin ⌊n_bins · i / n⌋: bin sizes differ by at most one, bin 0 holds the least diverse
    (lowest distance) queries, bin n_bins − 1 the most diverse. NaN values get bin −1. Values are rounded to 12
    decimals first: queries equally diverse up to float noise keep their query order.
    """
    v = _rounded(values)
    if n_bins <= 0:
        raise BenchError(f"n_bins must be > 0, got {n_bins}")
    out = np.full(len(v), -1, dtype=np.int64)
    defined = np.flatnonzero(~np.isnan(v))
    if len(defined) == 0:
        return out
    order = defined[np.argsort(v[defined], kind="stable")]
    out[order] = (n_bins * np.arange(len(order))) // len(order)
    return out


def bin_ranges(values: np.ndarray, bins: np.ndarray, n_bins: int = N_BINS) -> list[tuple[float, float, int]]:
    """(lowest value, highest value, size) of every bin, for labels like `Q1 [0.12, 0.31] n=250`."""
    v = np.asarray(values, dtype=np.float64)
    out = []
    for b in range(n_bins):
        sel = v[bins == b]
        out.append((float(sel.min()), float(sel.max()), int(len(sel))) if len(sel) else (math.nan, math.nan, 0))
    return out


def low_similarity_threshold(cos_sim: np.ndarray, percentile: float = LOW_SIMILARITY_PERCENTILE) -> float:
    """The 33rd percentile of the per-query mean pairwise cosine similarity (numpy's linear interpolation), over
    the values rounded to 12 decimals."""
    v = _rounded(cos_sim)
    if np.all(np.isnan(v)):
        raise BenchError("no query has two or more target vectors: the low-similarity subset is undefined")
    return float(np.nanpercentile(v, percentile))


def low_similarity_mask(cos_sim: np.ndarray, percentile: float = LOW_SIMILARITY_PERCENTILE) -> np.ndarray:
    """The low-similarity subset: queries whose mean pairwise cosine similarity between targets is at or below the
    33rd percentile of that similarity over the queries (about the third with the most dissimilar targets).

        low_sim(q) = 1[cos_sim(q) ≤ percentile_33({cos_sim(q')})]

    Queries with an undefined similarity (fewer than 2 target vectors) are never in it. Compared after rounding to
    12 decimals, so when every query is equally diverse (e.g. synthetic-linear, where it is −0.2 for all) the subset
    is the whole set rather than a third picked by float noise.
    """
    v = _rounded(cos_sim)
    t = low_similarity_threshold(v, percentile)
    return np.where(np.isnan(v), False, v <= t)


def reference_low_similarity_threshold(distance: np.ndarray, quantile: float = REFERENCE_QUANTILE) -> float:
    """The 3/4 quantile (nearest rank, as torch.quantile(..., interpolation="nearest")) of the per-query mean pairwise
    Euclidean distance, over the queries where it is defined, after rounding to 12 decimals."""
    v = _rounded(distance)
    v = v[~np.isnan(v)]
    if len(v) == 0:
        raise BenchError("no query has two distinct target vectors: the low-similarity subset is undefined")
    return float(np.quantile(v, quantile, method="nearest"))


def reference_low_similarity_mask(distance: np.ndarray, quantile: float = REFERENCE_QUANTILE) -> np.ndarray:
    """The reference analysis script's subset: queries whose mean pairwise Euclidean distance between targets (zero
    distances left out: `TargetDiversity.euclidean_nonzero`) is strictly above its 3/4 quantile.

        far(q) = 1[dist(q) > quantile_0.75({dist(q')})]

    Undefined values are never in it; compared after rounding to 12 decimals, so when every query is equally diverse
    the subset is empty (nothing lies strictly above) rather than picked by float noise."""
    v = _rounded(distance)
    t = reference_low_similarity_threshold(v, quantile)
    return np.where(np.isnan(v), False, v > t)


def answer_count_groups(n_answers: np.ndarray, min_size: int = 40) -> list[tuple[str, np.ndarray]]:
    """Condition on the number of answers: consecutive answer counts grouped so each group has ≥ `min_size` queries.

    Distinct counts are taken in increasing order and merged with the next until the group is large enough; a small
    remainder joins the last group. Returns (label, boolean mask) pairs, e.g. ("m=2", …), ("m=3–4", …), ("m≥5", …).
    """
    m = np.asarray(n_answers, dtype=np.int64)
    values = np.unique(m)
    groups: list[list[int]] = []
    current: list[int] = []
    for value in values.tolist():
        current.append(value)
        if int(np.isin(m, current).sum()) >= min_size:
            groups.append(current)
            current = []
    if current:
        if groups:
            groups[-1].extend(current)
        else:
            groups.append(current)
    out = []
    top = int(values.max()) if len(values) else 0
    for i, g in enumerate(groups):
        lo, hi = min(g), max(g)
        if lo == hi:
            label = f"m={lo}"
        elif i == len(groups) - 1 and hi == top and len(groups) > 1:
            label = f"m≥{lo}"
        else:
            label = f"m={lo}–{hi}"
        out.append((label, np.isin(m, g)))
    return out


@dataclass
class GoldSimilarity:
    """The appendix statistic: gold pairs within a query vs gold pairs drawn from two different random queries."""

    within: np.ndarray  # cosine similarity of every within-query pair of target vectors (pooled over queries)
    random: np.ndarray  # cosine similarity of n_random_pairs seeded random cross-query pairs
    mode: str
    seed: int

    @property
    def within_mean(self) -> float:
        return float(self.within.mean()) if len(self.within) else math.nan

    @property
    def random_mean(self) -> float:
        return float(self.random.mean()) if len(self.random) else math.nan

    def to_dict(self) -> dict[str, Any]:
        """Means, counts and 40-bin histograms over [−1, 1] (enough for Figure 6, small enough for a run file)."""
        return {
            "within_mean": _num(self.within_mean), "random_mean": _num(self.random_mean),
            "n_within_pairs": int(len(self.within)), "n_random_pairs": int(len(self.random)),
            "mode": self.mode, "seed": self.seed, "hist_edges": HIST_EDGES.tolist(),
            "within_hist": np.histogram(np.clip(self.within, -1, 1), HIST_EDGES)[0].tolist(),
            "random_hist": np.histogram(np.clip(self.random, -1, 1), HIST_EDGES)[0].tolist(),
        }


def gold_similarity(targets: Targets, embeddings: Any, mode: str = DEFAULT_TARGET_MODE,
                    n_random_pairs: int = N_RANDOM_PAIRS, seed: int = 0) -> GoldSimilarity:
    """Are a query's gold documents more alike than golds of unrelated queries? (the paper's appendix statistic)

        within = mean over every pair {i < j} of target vectors of the same query of cos(v_i, v_j), pooled over queries
        random = mean over N pairs of cos(u, w), u a target vector of query q1 and w one of query q2, where q1 ≠ q2
                 are drawn uniformly and u, w uniformly within their queries (seeded; N = 10,000 by default)

    Target vectors as in `target_rows` (`mode`). Two random queries may share a gold document; that pair counts as is.
    """
    rows = target_rows(targets, mode)
    within = [cos.ravel() for _, cos, _ in _grouped(rows, embeddings)]
    within_arr = np.concatenate(within) if within else np.zeros(0)
    n = len(rows)
    if n < 2 or n_random_pairs <= 0:
        return GoldSimilarity(within_arr, np.zeros(0), mode, seed)
    rng = np.random.default_rng(seed)
    sizes = np.array([len(r) for r in rows], dtype=np.int64)
    flat = np.concatenate(rows)
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    q1 = rng.integers(0, n, n_random_pairs)
    q2 = rng.integers(0, n - 1, n_random_pairs)
    q2 = q2 + (q2 >= q1)  # uniform over the other n − 1 queries
    u = flat[offsets[q1] + (rng.random(n_random_pairs) * sizes[q1]).astype(np.int64)]
    w = flat[offsets[q2] + (rng.random(n_random_pairs) * sizes[q2]).astype(np.int64)]
    eu = np.asarray(embeddings[u], dtype=np.float64)
    ew = np.asarray(embeddings[w], dtype=np.float64)
    denom = np.linalg.norm(eu, axis=1) * np.linalg.norm(ew, axis=1)
    dots = np.einsum("nd,nd->n", eu, ew)
    cos = np.divide(dots, denom, out=np.zeros_like(dots), where=denom > 0)
    return GoldSimilarity(within_arr, cos, mode, seed)


def run_record(targets: Targets, embeddings: Any, space: str, mode: str = DEFAULT_TARGET_MODE,
               seed: int = 0) -> dict[str, Any]:
    """What a run stores under extra["target_diversity"]: per-query values (in query order) and the gold statistic."""
    div = target_diversity(targets, embeddings, mode)
    return {
        "mode": mode,
        "space": space,
        "embeddings": "L2-normalised document embeddings, as indexed",
        "mean_pairwise_cos_sim": [_num(x) for x in div.cos_sim.tolist()],
        "mean_pairwise_euclidean": [_num(x) for x in div.euclidean.tolist()],
        "mean_pairwise_euclidean_nonzero": [_num(x) for x in np.asarray(div.euclidean_nonzero).tolist()],
        "n_answers": div.n_answers.tolist(),
        "n_vectors": div.n_vectors.tolist(),
        "gold_similarity": gold_similarity(targets, embeddings, mode, seed=seed).to_dict(),
    }


def from_record(record: dict[str, Any], source: str = "run") -> TargetDiversity:
    """Rebuild the per-query values a run stored with `run_record`."""
    try:
        cos = np.array([math.nan if x is None else x for x in record["mean_pairwise_cos_sim"]], dtype=np.float64)
        euc = np.array([math.nan if x is None else x for x in record["mean_pairwise_euclidean"]], dtype=np.float64)
        stored = record.get("mean_pairwise_euclidean_nonzero")  # absent in runs made before it was stored
        nonzero = None if stored is None else np.array([math.nan if x is None else x for x in stored],
                                                       dtype=np.float64)
        return TargetDiversity(cos, euc, np.asarray(record["n_answers"], dtype=np.int64),
                               np.asarray(record["n_vectors"], dtype=np.int64), str(record.get("mode", "?")), nonzero)
    except (KeyError, TypeError, ValueError) as exc:
        raise BenchError(f"{source}: extra.{RECORD_KEY} is malformed ({exc})") from None


def _num(x: float) -> float | None:
    """JSON has no NaN: undefined values are stored as null."""
    return None if x is None or not math.isfinite(x) else float(x)
