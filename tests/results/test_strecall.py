"""Our answer Recall@k equals ndeval's subtopic recall (ir_measures `StRecall@k` via pyndeval) when each answer has
several gold passages: a run exported in TREC format + qrels whose iteration column is the answer cluster."""

from __future__ import annotations

from pathlib import Path

import ir_measures
import numpy as np
import pytest

from bench.data.task import build_task
from bench.index.bm25 import load_or_build_bm25
from bench.metrics import parse_metric
from bench.results.record import trec_id, write_trec_cluster_qrels, write_trec_run
from tests.support.ambignq import DEV, TRAIN, write_fixture


def _cross_check(data, tmp: Path, ks=(5, 10, 20)) -> dict[int, float]:
    split = data.splits["test"]
    index = load_or_build_bm25(data.corpus)
    _, ranking = index.search(split.texts, max(ks))
    run_path, qrels_path = tmp / "run.trec", tmp / "test.qrels"
    write_trec_run(run_path, split.query_ids, ranking, data.corpus.ids, "bm25")
    write_trec_cluster_qrels(qrels_path, split.query_ids, split.targets, data.corpus.ids)
    qrels = list(ir_measures.read_trec_qrels(str(qrels_path)))
    run = list(ir_measures.read_trec_run(str(run_path)))
    means = {}
    for k in ks:
        ours = parse_metric(f"Recall@{k}").compute(ranking, split.targets)
        measure = ir_measures.parse_measure(f"StRecall@{k}")
        theirs = {m.query_id: m.value for m in ir_measures.iter_calc([measure], qrels, run)}
        got = np.array([theirs.get(trec_id(q), 0.0) for q in split.query_ids])
        np.testing.assert_allclose(ours, got, atol=1e-9)
        means[k] = float(ours.mean())
    return means


def test_strecall_equals_recall_on_a_fixture_task(tmp_path):
    folder, corpus = write_fixture(tmp_path, TRAIN, DEV)
    data = build_task("ambigqa", [f"data_dir={folder}", f"corpus={corpus}", "dense=none"]).load()
    _cross_check(data, tmp_path, ks=(1, 2, 5))


@pytest.mark.slow
def test_strecall_equals_recall_on_offline_ambigqa(tmp_path, shared_data):
    """The AmbigQA procedure on the shared AmbigNQ files over wiki-vital (BM25 candidates only, to keep the test
    within a minute: the dense candidates change which questions survive, not how the metric is computed)."""
    data = build_task("ambigqa", [f"data_dir={shared_data / 'ambignq'}",
                                  f"corpus={shared_data / 'wiki-vital' / 'summaries_en-us.json'}",
                                  "dense=none"]).load()
    split = data.splits["test"]
    assert len(split) > 20 and split.targets.n_clusters.min() >= 2
    # several gold passages per answer somewhere, or the cross-check would not test cluster recall
    per_cluster = np.bincount(split.targets.query * 100 + split.targets.cluster)
    assert per_cluster.max() > 1
    means = _cross_check(data, tmp_path)
    assert 0 < means[5] <= means[10] <= means[20] <= 1
