"""Fusion methods against hand-computed examples, tie-breaking, masks, and ranx's fused scores."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bench.registry import FUSERS
from bench.systems.fusion.combmax import combmax
from bench.systems.fusion.combsum import combsum
from bench.systems.fusion.normalise import normalise_scores
from bench.systems.fusion.round_robin import round_robin
from bench.systems.fusion.rrf import rrf
from bench.systems.records import Candidates, PerVectorLists

NEG = -np.inf


def two_lists() -> PerVectorLists:
    """Query 0: L1 = 3 (0.9), 1 (0.8), 2 (0.7); L2 = 1 (0.85), 4 (0.6), padding."""
    rows = np.array([[[3, 1, 2], [1, 4, -1]]])
    scores = np.array([[[0.9, 0.8, 0.7], [0.85, 0.6, NEG]]])
    return PerVectorLists(rows, scores, np.ones((1, 2), dtype=bool))


def test_rrf_hand_computed() -> None:
    out = rrf(two_lists(), 4, k=60)
    # 1: 1/62 + 1/61, 3: 1/61, 4: 1/62, 2: 1/63
    assert out.rows.tolist() == [[1, 3, 4, 2]]
    assert out.scores[0].tolist() == pytest.approx([1 / 62 + 1 / 61, 1 / 61, 1 / 62, 1 / 63], rel=1e-6)
    assert rrf(two_lists(), 2, k=0).rows.tolist() == [[1, 3]]  # 1/2 + 1 vs 1


def test_combmax_and_combsum_hand_computed() -> None:
    mx = combmax(two_lists(), 4)
    assert mx.rows.tolist() == [[3, 1, 2, 4]]
    assert mx.scores[0].tolist() == pytest.approx([0.9, 0.85, 0.7, 0.6])
    sm = combsum(two_lists(), 4)
    assert sm.rows.tolist() == [[1, 3, 2, 4]]
    assert sm.scores[0].tolist() == pytest.approx([1.65, 0.9, 0.7, 0.6])


def test_normalisations_hand_computed() -> None:
    lists = two_lists()
    mm = normalise_scores(lists, "minmax")
    assert mm[0, 0].tolist() == pytest.approx([1.0, 0.5, 0.0])
    assert mm[0, 1, :2].tolist() == pytest.approx([1.0, 0.0]) and mm[0, 1, 2] == NEG
    z = normalise_scores(lists, "zscore")
    s1 = math.sqrt(0.02 / 3)
    assert z[0, 0].tolist() == pytest.approx([0.1 / s1, 0.0, -0.1 / s1], abs=1e-5)  # float32 inputs
    assert z[0, 1, :2].tolist() == pytest.approx([1.0, -1.0])
    # min-max CombSUM: 1 → 0.5 + 1, 3 → 1, 2 and 4 → 0 (tie: lower row first)
    out = combsum(lists, 4, norm="minmax")
    assert out.rows.tolist() == [[1, 3, 2, 4]]
    assert out.scores[0].tolist() == pytest.approx([1.5, 1.0, 0.0, 0.0])
    # min-max CombMAX: 1 and 3 tie at 1 → row 1 first
    assert combmax(lists, 4, norm="minmax").rows.tolist() == [[1, 3, 2, 4]]
    # z-score CombSUM: 3 → 1.2247, 1 → 0 + 1, 4 → −1, 2 → −1.2247
    assert combsum(lists, 4, norm="zscore").rows.tolist() == [[3, 1, 4, 2]]


def test_constant_list_normalises_without_nan() -> None:
    lists = PerVectorLists(np.array([[[5, 6]]]), np.array([[[0.3, 0.3]]]), np.ones((1, 1), dtype=bool))
    assert normalise_scores(lists, "minmax")[0, 0].tolist() == [1.0, 1.0]
    assert normalise_scores(lists, "zscore")[0, 0].tolist() == [0.0, 0.0]


def test_equal_fused_scores_break_by_lower_row() -> None:
    rows = np.array([[[7, 2], [2, 7]]])  # 7 and 2 each at ranks 1 and 2: equal RRF and equal CombSUM
    scores = np.array([[[0.5, 0.4], [0.5, 0.4]]])
    lists = PerVectorLists(rows, scores, np.ones((1, 2), dtype=bool))
    for fused in (rrf(lists, 2), combsum(lists, 2), combmax(lists, 2)):
        assert fused.rows.tolist() == [[2, 7]]
        fused.check()


def test_masked_lists_are_ignored_and_queries_are_independent() -> None:
    rows = np.array([[[1, 2], [3, 4]], [[5, 6], [9, 9]]])
    scores = np.array([[[0.9, 0.1], [0.8, 0.7]], [[0.5, 0.4], [0.99, 0.98]]])
    mask = np.array([[True, True], [True, False]])  # query 1 has one list; its second row is garbage
    lists = PerVectorLists(rows, scores, mask)
    assert combmax(lists, 3).rows.tolist() == [[1, 3, 4], [5, 6, -1]]
    assert rrf(lists, 3).rows.tolist()[1] == [5, 6, -1]
    assert round_robin(lists, 3).rows.tolist() == [[1, 3, 2], [5, 6, -1]]
    out = combsum(lists, 3)
    assert out.scores[1, 2] == NEG and out.rows[1, 2] == -1
    out.check()


def test_round_robin_scores_are_reciprocal_ranks() -> None:
    out = round_robin(two_lists(), 5)
    assert out.rows.tolist() == [[3, 1, 4, 2, -1]]  # L1[0]=3, L2[0]=1, L1[1]=1 (dup), L2[1]=4, L1[2]=2
    assert out.scores[0, :4].tolist() == pytest.approx([1, 1 / 2, 1 / 3, 1 / 4])


def test_registered_with_aliases() -> None:
    assert FUSERS.get("max")[0].name == "combmax"
    assert FUSERS.get("sum")[0].name == "combsum"
    assert {"round-robin", "rrf", "combmax", "combsum"} <= set(FUSERS.all())


def _ranx_scores(rows: np.ndarray, scores: np.ndarray, method: str, norm: str) -> list[dict[str, float]]:
    from ranx import Run, fuse

    n, m, k = rows.shape
    runs = []
    for j in range(m):
        runs.append(Run({f"q{q}": {f"d{rows[q, j, i]}": float(scores[q, j, i]) for i in range(k)}
                         for q in range(n)}))
    fused = fuse(runs=runs, norm=norm, method=method)
    return [{int(d[1:]): s for d, s in fused.run[f"q{q}"].items()} for q in range(n)]


@pytest.mark.slow
def test_scores_equal_ranx_fuse() -> None:
    """Our fused scores per (query, doc) equal ranx's on random lists (ranx needs unique doc ids per list)."""
    rng = np.random.default_rng(0)
    n, m, k = 6, 3, 8
    rows = np.stack([np.stack([rng.choice(20, k, replace=False) for _ in range(m)]) for _ in range(n)])
    scores = -np.sort(-rng.random((n, m, k)), axis=2)
    lists = PerVectorLists(rows, scores.astype(np.float32), np.ones((n, m), dtype=bool))
    cases = [(lambda L, d: rrf(L, d), "rrf", None), (lambda L, d: combsum(L, d), "sum", None),
             (lambda L, d: combmax(L, d), "max", None), (lambda L, d: combsum(L, d, "minmax"), "sum", "min-max"),
             (lambda L, d: combmax(L, d, "minmax"), "max", "min-max")]
    for ours_fn, method, norm in cases:
        theirs = _ranx_scores(rows, lists.scores.astype(np.float64), method, norm)
        ours: Candidates = ours_fn(lists, m * k)
        for q in range(n):
            got = {int(r): float(s) for r, s in zip(ours.rows[q], ours.scores[q], strict=True) if r >= 0}
            assert got.keys() == theirs[q].keys(), method
            for d, s in theirs[q].items():
                assert got[d] == pytest.approx(s, rel=1e-5, abs=1e-6), (method, norm, q, d)
