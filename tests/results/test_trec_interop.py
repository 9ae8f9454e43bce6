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
