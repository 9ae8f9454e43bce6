"""MRECALL@k and Recall@k on hand-computed cases (docs/architecture.md §4)."""

from __future__ import annotations

import numpy as np
import pytest

from bench.data.task import Targets
from bench.errors import BenchError
from bench.metrics import Metric, default_metrics, parse_ks, parse_metric
from bench.metrics.mrecall import mrecall_at_k
from bench.metrics.recall import recall_at_k

# Query 0: m = 3, cluster 1 has two gold docs.  Query 1: m = 2, its list is short (-1 = empty slot).
# Query 2: m = 2, both docs of cluster 0 are retrieved (must count once).
TARGETS = Targets.from_nested([
    [[5], [7, 8], [9]],
    [[3], [4]],
    [[1, 2], [6]],
])
RANKING = np.array([
    [7, 1, 5, 2, 9],
    [3, -1, -1, -1, -1],
    [1, 2, 0, 3, 4],
])


@pytest.mark.parametrize(
    ("k", "expected"),
    [
        (1, [1, 1, 1]),  # k < m: one cluster hit suffices
        (2, [0, 0, 0]),  # q0 hits 1 of the needed 2; q1's list is short; q2 hits cluster 0 twice = 1 cluster
        (3, [0, 0, 0]),  # q0 hits 2 of 3
        (5, [1, 0, 0]),  # k ≥ m: q0 has every cluster
    ],
)
def test_mrecall_hand_computed(k: int, expected: list[int]) -> None:
    assert mrecall_at_k(RANKING, TARGETS, k).tolist() == expected


@pytest.mark.parametrize(
    ("k", "expected"),
    [(1, [1 / 3, 1 / 2, 1 / 2]), (2, [1 / 3, 1 / 2, 1 / 2]), (3, [2 / 3, 1 / 2, 1 / 2]), (5, [1.0, 1 / 2, 1 / 2])],
)
def test_recall_hand_computed(k: int, expected: list[float]) -> None:
    np.testing.assert_allclose(recall_at_k(RANKING, TARGETS, k), expected)


def test_k_beyond_list_length_uses_what_is_there() -> None:
    assert mrecall_at_k(RANKING, TARGETS, 50).tolist() == [1, 0, 0]


def test_any_doc_of_a_cluster_solves_it() -> None:
    targets = Targets.from_nested([[[10, 11, 12], [20]]])
    assert mrecall_at_k(np.array([[12, 20]]), targets, 2).tolist() == [1]
    assert mrecall_at_k(np.array([[12, 11]]), targets, 2).tolist() == [0]


def test_duplicate_doc_in_ranking_counts_at_best_rank() -> None:
    targets = Targets.from_nested([[[4], [5]]])
    assert recall_at_k(np.array([[4, 4, 5]]), targets, 2).tolist() == [0.5]


def test_nothing_retrieved() -> None:
    targets = Targets.from_nested([[[1]], [[2], [3]]])
    ranking = np.full((2, 3), -1)
    assert mrecall_at_k(ranking, targets, 3).tolist() == [0, 0]
    assert recall_at_k(ranking, targets, 3).tolist() == [0, 0]


def test_ranking_shape_must_match_queries() -> None:
    with pytest.raises(BenchError, match="expected"):
        mrecall_at_k(np.zeros((2, 3), dtype=int), TARGETS, 1)


def test_metric_names_parse_and_print() -> None:
    assert parse_metric("MRECALL@10") == Metric("MRECALL", 10)
    assert parse_metric("recall@100") == Metric("Recall", 100)
    assert str(parse_metric("mrecall@2")) == "MRECALL@2"
    for bad in ("MRECALL", "MRECALL@0", "NDCG@10", "MRECALL@-1"):
        with pytest.raises(BenchError):
            parse_metric(bad)


def test_parse_ks() -> None:
    assert parse_ks("100,10,10") == (10, 100)
    for bad in ("0", "-3", "ten", ""):
        with pytest.raises(BenchError):
            parse_ks(bad)
    assert [str(m) for m in default_metrics((10, 2))] == ["MRECALL@2", "MRECALL@10", "Recall@2", "Recall@10"]


def test_vectorised_matches_a_plain_loop_on_random_data() -> None:
    rng = np.random.default_rng(0)
    nested = [[list(rng.choice(60, rng.integers(1, 4), replace=False)) for _ in range(rng.integers(1, 7))]
              for _ in range(200)]
    targets = Targets.from_nested(nested)
    ranking = np.stack([rng.permutation(60)[:20] for _ in range(200)])
    ranking[rng.random(ranking.shape) < 0.1] = -1
    for k in (1, 3, 5, 20):
        exp_m, exp_r = [], []
        for q, clusters in enumerate(nested):
            top = set(ranking[q, :k].tolist()) - {-1}
            hits = sum(bool(top & set(c)) for c in clusters)
            exp_m.append(float(hits >= min(k, len(clusters))))
            exp_r.append(hits / len(clusters))
        assert mrecall_at_k(ranking, targets, k).tolist() == exp_m
        np.testing.assert_allclose(recall_at_k(ranking, targets, k), exp_r)
