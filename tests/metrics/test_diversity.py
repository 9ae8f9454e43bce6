"""Target diversity, quartile bins, the low-similarity cut, answer-count groups and the gold-pair statistic, checked
against values worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bench.data.task import Targets
from bench.errors import BenchError
from bench.evaluate import evaluate_named
from bench.metrics import diversity as div

E = np.eye(4)


def test_pairwise_values_by_hand() -> None:
    """q0: targets e1, e2 (orthogonal): cos 0, distance √2.
    q1: e1, e1, −e1: pair cosines 1, −1, −1 → mean −1/3; distances 0, 2, 2 → mean 4/3.
    q2: 2·e1 and e2 (unnormalised): cosine ignores the norm (0), Euclidean does not (√5).
    q3: one answer: undefined."""
    emb = np.stack([E[0], E[1], -E[0], 2 * E[0]])  # rows 0..3
    targets = Targets.from_nested([[[0], [1]], [[0], [0], [2]], [[3], [1]], [[1]]])
    td = div.target_diversity(targets, emb)
    assert td.cos_sim[:3] == pytest.approx([0.0, -1 / 3, 0.0])
    assert td.cos_dist[:3] == pytest.approx([1.0, 4 / 3, 1.0])
    assert td.euclidean[:3] == pytest.approx([math.sqrt(2), 4 / 3, math.sqrt(5)])
    assert math.isnan(td.cos_sim[3]) and math.isnan(td.euclidean[3])
    assert td.n_answers.tolist() == [2, 3, 2, 1]
    assert td.distance("euclidean") is td.euclidean
    with pytest.raises(BenchError, match="cosine, euclidean"):
        td.distance("manhattan")


def test_representative_vs_all_gold_docs() -> None:
    """Cluster 0 has gold docs e1 and e2, cluster 1 has −e1. One representative per cluster (the default) uses e1 and
    −e1 (cos −1); all gold docs use e1, e2, −e1: cosines 0, −1, 0 → −1/3."""
    emb = np.stack([E[0], E[1], -E[0]])
    targets = Targets.from_nested([[[0, 1], [2]]])
    rep = div.target_diversity(targets, emb)  # the default: one representative per cluster (its value, by hand)
    every = div.target_diversity(targets, emb, mode="all")
    assert rep.cos_sim.tolist() == div.target_diversity(targets, emb, mode="representative").cos_sim.tolist()
    assert rep.cos_sim[0] == pytest.approx(-1.0) and rep.n_vectors[0] == 2
    assert every.cos_sim[0] == pytest.approx(-1 / 3) and every.n_vectors[0] == 3
    assert [r.tolist() for r in div.target_rows(targets, "all")] == [[0, 1, 2]]
    with pytest.raises(BenchError, match="target mode"):
        div.target_rows(targets, "centroid")


def test_quartile_bins_by_hand() -> None:
    values = np.array([0.5, 0.1, 0.4, 0.2, 0.3, 0.8, 0.7, 0.6])
    # ascending: 0.1 (q1), 0.2 (q3) | 0.3 (q4), 0.4 (q2) | 0.5 (q0), 0.6 (q7) | 0.7 (q6), 0.8 (q5)
    assert div.quartile_bins(values).tolist() == [2, 0, 1, 0, 1, 3, 3, 2]
    # 10 queries: bin ⌊4i/10⌋ for the i-th smallest → sizes 3, 2, 3, 2
    assert np.bincount(div.quartile_bins(np.arange(10.0))).tolist() == [3, 2, 3, 2]
    # NaN falls in no bin; the 4 defined values get one bin each
    assert div.quartile_bins(np.array([0.3, np.nan, 0.1, 0.2, 0.4])).tolist() == [2, -1, 0, 1, 3]
    # ties (equal up to float noise) keep query order
    assert div.quartile_bins(np.array([0.2, 0.2 + 1e-14, 0.2, 0.2 - 1e-14])).tolist() == [0, 1, 2, 3]
    ranges = div.bin_ranges(values, div.quartile_bins(values))
    assert ranges[0] == (0.1, 0.2, 2) and ranges[3] == (0.7, 0.8, 2)


def test_low_similarity_cut_by_hand() -> None:
    sims = np.array([0.7, 0.1, 1.0, 0.4, 0.2, 0.9, 0.3, 0.6, 0.5, 0.8])
    # 33rd percentile with linear interpolation: position 0.33 · 9 = 2.97 between 0.3 and 0.4 → 0.397
    assert div.low_similarity_threshold(sims) == pytest.approx(0.397)
    assert np.flatnonzero(div.low_similarity_mask(sims)).tolist() == [1, 4, 6]  # 0.1, 0.2, 0.3
    # "at or below": ties at the threshold are all in; position 0.33 · 8 = 2.64 → 0.1 + 0.64 · 0.4 = 0.356
    tied = np.array([0.5, 0.1, 0.9, 0.1, 0.5, 0.9, 0.1, 0.5, 0.9])
    assert np.flatnonzero(div.low_similarity_mask(tied)).tolist() == [1, 3, 6]
    # every query equally similar → the whole set (not a third chosen by float noise); NaN never in it
    flat = np.array([-0.2, -0.2 + 1e-14, -0.2 - 1e-14, np.nan])
    assert div.low_similarity_mask(flat).tolist() == [True, True, True, False]
    with pytest.raises(BenchError, match="undefined"):
        div.low_similarity_mask(np.array([np.nan, np.nan]))


def test_reference_low_similarity_rule_by_hand() -> None:
    """The reference analysis script's rule: mean pairwise distance strictly above the 3/4 quantile, nearest rank."""
    import torch

    dist = np.array([0.7, 0.1, 1.0, 0.4, 0.2, 0.9, 0.3, 0.6, 0.5, 0.8, np.nan])
    # nearest rank: position 0.75 · 9 = 6.75 → the 7th smallest (0-based), 0.8; strictly above: 0.9 and 1.0
    assert div.reference_low_similarity_threshold(dist) == pytest.approx(0.8)
    assert np.flatnonzero(div.reference_low_similarity_mask(dist)).tolist() == [2, 5]
    defined = torch.tensor(dist[:-1])
    for n in range(2, 11):  # the same quantile as torch.quantile(interpolation="nearest"), for every size
        v = defined[:n]
        assert div.reference_low_similarity_threshold(v.numpy()) == pytest.approx(
            float(torch.quantile(v, 0.75, interpolation="nearest")))
    flat = np.array([1.2, 1.2 + 1e-14, 1.2 - 1e-14])
    assert not div.reference_low_similarity_mask(flat).any()  # all equal: nothing strictly above


def test_euclidean_without_zero_distances() -> None:
    """q0: e1, e1, e2: distances 0, √2, √2 → mean 2√2/3 over every pair, √2 over the non-zero ones. q1: one vector
    twice → every distance zero → undefined."""
    emb = np.stack([E[0], E[1]])
    td = div.target_diversity(Targets.from_nested([[[0], [0], [1]], [[1], [1]]]), emb)
    assert td.euclidean[0] == pytest.approx(2 * math.sqrt(2) / 3)
    assert td.euclidean_nonzero is not None and td.euclidean_nonzero[0] == pytest.approx(math.sqrt(2))
    assert td.euclidean[1] == 0 and math.isnan(td.euclidean_nonzero[1])
    record = div.run_record(Targets.from_nested([[[0], [0], [1]], [[1], [1]]]), emb, "vectors")
    back = div.from_record(record)
    assert back.euclidean_nonzero is not None and back.euclidean_nonzero[0] == pytest.approx(math.sqrt(2))
    assert record["mean_pairwise_euclidean_nonzero"][1] is None
    del record["mean_pairwise_euclidean_nonzero"]  # a run stored before it existed
    assert div.from_record(record).euclidean_nonzero is None


def test_answer_count_groups() -> None:
    m = np.array([2] * 50 + [3] * 30 + [4] * 15 + [5] * 5)
    groups = div.answer_count_groups(m, min_size=40)
    # m=2 alone has 50; 3 + 4 reach 45, and the 5 leftover m=5 queries join the last group
    assert [(label, int(mask.sum())) for label, mask in groups] == [("m=2", 50), ("m≥3", 50)]
    groups = div.answer_count_groups(m, min_size=10)
    assert [(label, int(mask.sum())) for label, mask in groups] == [("m=2", 50), ("m=3", 30), ("m≥4", 20)]
    assert [(label, int(mask.sum())) for label, mask in div.answer_count_groups(np.full(7, 5))] == [("m=5", 7)]


def test_gold_similarity_never_pairs_a_query_with_itself() -> None:
    """Each query's two targets are the same direction e_q (within-query cosine 1) and queries are orthogonal
    (cross-query cosine 0), so any random pair drawn from a single query would show up as a 1."""
    n = 6
    emb = np.eye(n).repeat(2, axis=0)  # rows 2q and 2q+1 are both e_q
    targets = Targets.from_nested([[[2 * q], [2 * q + 1]] for q in range(n)])
    g = div.gold_similarity(targets, emb, n_random_pairs=5000, seed=3)
    assert g.within.tolist() == [1.0] * n and g.within_mean == 1.0
    assert len(g.random) == 5000 and np.all(g.random == 0.0) and g.random_mean == 0.0
    rec = g.to_dict()
    assert rec["n_within_pairs"] == n and sum(rec["within_hist"]) == n and sum(rec["random_hist"]) == 5000


def test_gold_similarity_is_seeded() -> None:
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(40, 8))
    targets = Targets.from_nested([[[i], [i + 20]] for i in range(20)])
    a = div.gold_similarity(targets, emb, n_random_pairs=500, seed=1)
    b = div.gold_similarity(targets, emb, n_random_pairs=500, seed=1)
    c = div.gold_similarity(targets, emb, n_random_pairs=500, seed=2)
    np.testing.assert_array_equal(a.random, b.random)
    assert not np.array_equal(a.random, c.random)


def test_record_round_trip_keeps_nan_as_null() -> None:
    emb = np.stack([E[0], E[1], -E[0]])
    targets = Targets.from_nested([[[0], [1]], [[2]]])
    rec = div.run_record(targets, emb, space="vectors")
    assert rec["mean_pairwise_cos_sim"] == [0.0, None] and rec["mode"] == "representative"
    back = div.from_record(rec)
    assert back.cos_sim[0] == 0.0 and math.isnan(back.cos_sim[1])
    with pytest.raises(BenchError, match="malformed"):
        div.from_record({"mean_pairwise_cos_sim": [0.1]})


def test_pipeline_stores_diversity_linear_task_by_hand(tmp_path) -> None:
    """synthetic-linear: targets x, Ma·x, Mb·x, −Ma·x, −Mb·x all have |x| as norm and sum to x, so the sum of their
    unit vectors is x/|x| and Σ_{i<j} cos = (1 − 5)/2 = −2: every query's mean pairwise cosine is exactly −2/10."""
    result, _ = evaluate_named("synthetic-linear-single", "input", (10,), task_params=["d=16", "n_train=20",
        "n_test=30",
                                                                          "n_negatives=100"], results_dir=tmp_path)
    rec = result.extra[div.RECORD_KEY]
    assert len(rec["mean_pairwise_cos_sim"]) == 30
    assert rec["mean_pairwise_cos_sim"] == pytest.approx([-0.2] * 30, abs=1e-6)
    assert rec["n_answers"] == [5] * 30 and rec["space"] == "vectors"
    assert rec["gold_similarity"]["within_mean"] == pytest.approx(-0.2, abs=1e-6)
    assert rec["gold_similarity"]["n_within_pairs"] == 30 * 10
