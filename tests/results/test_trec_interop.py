"""TREC export: ir_measures reads our run and qrels files and computes the same Recall@k as we do.

They agree because every answer cluster of a synthetic task has exactly one gold document, so document recall is
answer recall; with several gold docs per cluster, qrels cannot express clusters and the two would differ.
"""

from __future__ import annotations

from collections import defaultdict

import ir_measures
import numpy as np
import pytest
from ir_measures import R

from bench.cli import main
from bench.data.task import Targets
from bench.results.record import load_run, write_trec_qrels

SMALL = ["-t", "d=32", "-t", "n_train=40", "-t", "n_test=60", "-t", "n_negatives=1500"]


def test_ir_measures_recall_matches_ours(tmp_path) -> None:
    results, out = tmp_path / "results", tmp_path / "trec"
    assert main(["run", "--task", "synthetic-linear-multi", "--retriever", "input,oracle", "--k", "10,100",
                 "--results-dir", str(results), *SMALL]) == 0
    assert main(["export", "--task", "synthetic-linear-multi", "--results-dir", str(results), "--out-dir",
        str(out)]) == 0
    qrels = list(ir_measures.read_trec_qrels(str(out / "synthetic-linear-multi.test.qrels")))
    assert len(qrels) == 60 * 5  # 5 answers per query, one gold doc each

    for retriever in ("input", "oracle"):
        rec = load_run(next((results / "synthetic-linear-multi" / retriever).glob("*.json")))
        run = list(ir_measures.read_trec_run(str(out / f"{retriever}.trec")))
        for k in (10, 100):
            theirs: dict[str, float] = defaultdict(float)
            for m in ir_measures.iter_calc([R @ k], qrels, run):
                theirs[m.query_id] = m.value
            ours = rec.per_query[f"Recall@{k}"]
            np.testing.assert_allclose([theirs[q] for q in rec.query_ids], ours, rtol=0, atol=1e-12)
            assert ir_measures.calc_aggregate([R @ k], qrels, run)[R @ k] == pytest.approx(rec.summary[f"Recall@{k}"])
    # the subtopic qrels (answer cluster in the iteration column): StRecall@k through pyndeval is our Recall@k too
    sub = list(ir_measures.read_trec_qrels(str(out / "synthetic-linear-multi.test.subtopic.qrels")))
    assert sorted({q.iteration for q in sub}) == ["0", "1", "2", "3", "4"]
    rec = load_run(next((results / "synthetic-linear-multi" / "input").glob("*.json")))
    st10 = ir_measures.parse_measure("StRecall@10")
    theirs10 = {m.query_id: m.value for m in ir_measures.iter_calc([st10], sub, list(
        ir_measures.read_trec_run(str(out / "input.trec"))))}
    np.testing.assert_allclose([theirs10.get(q, 0.0) for q in rec.query_ids], rec.per_query["Recall@10"], atol=1e-9)
    # the check is not vacuous: input finds some targets but far from all
    assert 0 < load_run(next((results / "synthetic-linear-multi" / "input").glob("*.json"))).summary["Recall@10"] < 1


def test_qrels_list_each_gold_doc_once(tmp_path) -> None:
    """A doc that is gold for two clusters of one query is one qrels line; qrels follow query order."""
    targets = Targets.from_nested([[[3, 1], [1]], [[0]]])
    path = tmp_path / "q.qrels"
    write_trec_qrels(path, ["qa", "qb"], targets, ["d0", "d1", "d2", "d3"])
    assert path.read_text().splitlines() == ["qa 0 d1 1", "qa 0 d3 1", "qb 0 d0 1"]


def test_export_refuses_changed_task_data(tmp_path, capsys) -> None:
    results = tmp_path / "results"
    assert main(["run", "--task", "synthetic-linear-single", "--retriever", "input", "--k", "10",
                 "--results-dir", str(results), *SMALL]) == 0
    path = next((results / "synthetic-linear-single" / "input").glob("*.json"))
    text = path.read_text().replace('"corpus": "', '"corpus": "0', 1)  # a run made on other data
    path.write_text(text)
    capsys.readouterr()
    assert main(["export", "--run", str(path), "--out-dir", str(tmp_path / "t")]) == 2
    assert "data hash differs" in capsys.readouterr().err


def test_strictly_decreasing_keeps_order_and_moves_ties_by_float32_steps() -> None:
    from bench.results.record import strictly_decreasing

    out, moved = strictly_decreasing(np.array([3.0, 2.0, 2.0, 2.0, 1.9999999, 1.0], dtype=np.float32))
    assert moved == 3 and np.all(np.diff(out) < 0)
    two = np.float32(2.0)
    step = np.nextafter(two, np.float32(0))
    assert out[2] == step and out[3] == np.nextafter(step, np.float32(0))  # one float32 step per tied score
    assert len({f"{float(v):.9g}" for v in out}) == len(out)  # 9 significant digits tell them apart


def test_limit_small_bm25_ties_survive_export(shared_data, tmp_path) -> None:
    """On LIMIT-small, bm25 ties scores inside some lists (query_334 at ranks 2–3); trec_eval breaks ties its own way,
    which turned Recall@2 97.85 into 97.80 through `bench export` + ir_measures. The written scores are strictly
    decreasing, so ir_measures now reads our order and agrees with our Recall@k per query."""
    results, out = tmp_path / "results", tmp_path / "trec"
    data = ["-t", f"data_dir={shared_data / 'limit-small'}"]
    assert main(["run", "--task", "limit-small", *data, "--retriever", "bm25", "--results-dir", str(results)]) == 0
    assert main(["export", "--task", "limit-small", "--results-dir", str(results), "--out-dir", str(out)]) == 0
    rec = load_run(next((results / "limit-small" / "bm25").glob("*.json")))
    assert rec.summary["Recall@2"] == pytest.approx(0.9785)
    assert rec.extra["trec"]["order_preserving"] and rec.extra["trec"]["nudged"] > 0  # there were ties to move
    qrels = list(ir_measures.read_trec_qrels(str(out / "limit-small.test.qrels")))
    run = list(ir_measures.read_trec_run(str(out / "bm25.trec")))
    for k in (2, 10, 20):
        theirs = {m.query_id: m.value for m in ir_measures.iter_calc([R @ k], qrels, run)}
        np.testing.assert_allclose([theirs[q] for q in rec.query_ids], rec.per_query[f"Recall@{k}"], atol=1e-12)
    assert ir_measures.calc_aggregate([R @ 2], qrels, run)[R @ 2] == pytest.approx(0.9785)
    q334 = [r for r in run if r.query_id == "query_334"]
    assert len({r.score for r in q334}) == len(q334)  # no tie left
