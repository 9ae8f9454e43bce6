"""Records read back are held to their measures (bench/results/validate.py): values inside each measure's range,
whole where it counts, counts not negative; the newest valid run of each system is found past broken files
(bench/results/runs.py `collect_runs`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.errors import BenchError
from bench.metrics import parse_metric
from bench.results.record import load_run, valid_runs
from bench.results.runs import collect_runs
from bench.results.validate import check_run_record


def _rec(**changes: object) -> dict:
    rec = {"run_id": "20260101T000000000Z-aaaaaaaa", "task": "t", "retriever": "r", "ks": [10],
           "query_ids": ["q0", "q1"], "per_query": {"MRECALL@10": [1.0, 0.0], "Recall@10": [0.5, 1.0]},
           "summary": {"MRECALL@10": 0.5, "Recall@10": 0.75}, "seed": 0, "corpus_size": 10}
    rec.update(changes)
    return rec


def test_measures_declare_their_range_and_whether_they_count() -> None:
    assert parse_metric("MRECALL@10").bounds == (0.0, 1.0) and parse_metric("MRECALL@10").whole
    assert parse_metric("Recall@10").bounds == (0.0, 1.0) and not parse_metric("Recall@10").whole


@pytest.mark.parametrize(("changes", "message"), [
    ({"per_query": {"MRECALL@10": [5.0, 1.0]}}, r"'per_query.MRECALL@10' holds 5.0 \(query 'q0'\), outside the "
                                                r"measure's range \[0, 1\]"),
    ({"per_query": {"Recall@10": [0.5, -0.25]}}, r"'per_query.Recall@10' holds -0.25 \(query 'q1'\)"),
    ({"per_query": {"MRECALL@10": [0.5, 1.0]}}, r"MRECALL is a count, its per-query values are whole numbers"),
    ({"summary": {"MRECALL@10": 1.5}}, r"'summary.MRECALL@10' holds 1.5, outside"),
    ({"corpus_size": -1}, r"field 'corpus_size' must be ≥ 0, got -1"),
    ({"seed": -3}, r"field 'seed' must be ≥ 0"),
])
def test_impossible_values_are_one_error_naming_file_and_field(changes: dict, message: str) -> None:
    with pytest.raises(BenchError, match=message) as info:
        check_run_record(_rec(**changes), "f.json")
    assert str(info.value).startswith("f.json: ") and "\n" not in str(info.value)


def test_possible_values_and_unknown_measures_pass() -> None:
    check_run_record(_rec(), "f.json")
    check_run_record(_rec(per_query={"NotInstalled@10": [7.5, 3.0]}, summary={"NotInstalled@10": 5.25}), "f.json")


def test_the_newest_valid_run_of_each_system_wins(tmp_path: Path) -> None:
    folder = tmp_path / "t" / "r"
    folder.mkdir(parents=True)
    for stamp, rec in (("20260101", _rec()), ("20260102", _rec(run_id="20260102T000000000Z-bbbbbbbb")),
                       ("20260103", _rec(run_id="20260103T000000000Z-cccccccc", corpus_size=-5))):
        (folder / f"{stamp}T000000000Z-x.json").write_text(json.dumps(rec))
    skipped: list[str] = []
    runs = collect_runs("t", tmp_path, None, on_skip=skipped.append)
    assert runs["r"][0].run_id == "20260102T000000000Z-bbbbbbbb"
    assert len(skipped) == 1 and skipped[0].startswith(str(folder / "20260103T000000000Z-x.json"))
    assert [r.run_id for r, _ in valid_runs(sorted(folder.glob("*.json")), skipped.append)] == \
        ["20260101T000000000Z-aaaaaaaa", "20260102T000000000Z-bbbbbbbb"]
    with pytest.raises(BenchError, match="corpus_size"):
        load_run(folder / "20260103T000000000Z-x.json")
