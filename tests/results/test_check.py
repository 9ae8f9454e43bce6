"""The regression gate: the expected-scores file format, its errors, a planted regression, and the shipped gate."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from bench.cli import main
from bench.errors import BenchError
from bench.results.check import (
    EXPECTED_DIR,
    Expectation,
    judge,
    load_expectations,
    measure,
    resolve_file,
)

SMALL = {"d": 16, "n_train": 30, "n_test": 20, "n_negatives": 300}


def write(path: Path, doc: object) -> Path:
    path.write_text(yaml.safe_dump(doc, sort_keys=False) if not isinstance(doc, str) else doc)
    return path


def entry(**kw: object) -> dict:
    base = {"task": "synthetic-linear-single", "task_params": SMALL, "retriever": "input", "metric": "Recall@10",
            "expected": 0.2, "tolerance": 0.01}
    return {**base, **kw}


def test_defaults_merge_and_lines(tmp_path) -> None:
    path = write(tmp_path / "e.yaml", """\
defaults:
  task_params: {d: 16, n_test: 20}
  tolerance: 0.5
entries:
  - task: synthetic-linear-single
    task_params: {n_train: 30}
    retriever: oracle
    metric: mrecall@10
    expected: 1
""")
    [exp] = load_expectations(path)
    assert exp.task_params == {"d": 16, "n_test": 20, "n_train": 30}  # parameter maps merge
    assert exp.tolerance == 0.5 and exp.metric == "MRECALL@10" and exp.expected == 1.0
    assert exp.where.endswith("e.yaml:5 (entry 1)")  # the line of the entry's "- task:"


@pytest.mark.parametrize(("doc", "message"), [
    ({"entries": [entry(expected="high")]}, r"e.yaml:\d+ \(entry 1\): field 'expected' must be a number"),
    ({"entries": [{k: v for k, v in entry().items() if k != "tolerance"}]}, "missing field 'tolerance'"),
    ({"entries": [entry(metric="MRR@10")]}, "field 'metric': unknown measure 'MRR'"),
    ({"entries": [entry(), entry(colour="red")]}, r"\(entry 2\): unknown field\(s\) colour"),
    ({"entries": [entry(tolerance=-1)]}, "must be ≥ 0"),
    ({"entries": []}, "non-empty 'entries' list"),
    ("entries: [\n  - {task: x\n", r"e.yaml:\d+: not valid YAML"),
])
def test_bad_files_are_one_clear_error(tmp_path, doc, message) -> None:
    with pytest.raises(BenchError, match=message):
        load_expectations(write(tmp_path / "e.yaml", doc))


def test_judge() -> None:
    exp = Expectation("t", "r", "MRECALL@10", expected=0.5, tolerance=0.05)
    assert judge(exp, 0.549).status == "ok"
    assert judge(exp, 0.4).status == "dropped" and judge(exp, 0.4).diff == pytest.approx(-0.1)
    assert judge(exp, 0.6).status == "rose" and judge(exp, 0.6).failed
    assert judge(exp, 0.6, one_sided=True).status == "rose (allowed)" and not judge(exp, 0.6, one_sided=True).failed


def test_planted_regression_fails_with_a_readable_diff(tmp_path, capsys) -> None:
    """An expected value raised far above what input reaches (0.9 for Recall@10) must fail the gate (exit 1) and the
    table must show expected, measured and how far it moved; the honest entry next to it passes."""
    [achieved] = measure(load_expectations(write(tmp_path / "probe.yaml", {"entries": [entry()]})))
    assert achieved.measured < 0.5
    path = write(tmp_path / "planted.yaml", {"entries": [
        entry(retriever="oracle", metric="MRECALL@10", expected=1.0, tolerance=0.0),
        entry(expected=0.9, tolerance=0.01),
    ]})
    code = main(["check", str(path)])
    captured = capsys.readouterr()
    assert code == 1
    out = captured.out
    assert "1 ok, 1 moved" in out
    row = next(line for line in out.splitlines() if "Recall@10" in line and "input" in line)
    assert "0.9000" in row and f"{achieved.measured:.4f}" in row and "dropped" in row
    assert f"{achieved.measured - 0.9:+.4f}" in row
    assert "1 of 2 values left their tolerance" in captured.err


def test_read_existing_results(tmp_path, capsys) -> None:
    results = tmp_path / "results"
    args = [x for k, v in SMALL.items() for x in ("-t", f"{k}={v}")]
    assert main(["run", "--task", "synthetic-linear-single", "--retriever", "input", "--k", "10",
                 "--results-dir", str(results), *args]) == 0
    [ran] = measure(load_expectations(write(tmp_path / "probe.yaml", {"entries": [entry()]})))
    good = write(tmp_path / "good.yaml", {"entries": [entry(expected=ran.measured)]})
    [read] = measure(load_expectations(good), read_dir=results)
    assert read.status == "ok" and read.measured == ran.measured  # same config, same number
    assert (results / "synthetic-linear-single" / "input" / f"{read.run_id}.json").exists()
    # a config never run (other task params) is reported missing, and fails
    other = write(tmp_path / "other.yaml", {"entries": [entry(task_params={**SMALL, "d": 8})]})
    capsys.readouterr()
    assert main(["check", str(other), "--read", str(results)]) == 1
    assert "missing" in capsys.readouterr().out


def test_shipped_file_resolves_by_name() -> None:
    assert resolve_file(None) == EXPECTED_DIR / "synthetic-smoke.yaml"
    assert resolve_file("synthetic-smoke") == EXPECTED_DIR / "synthetic-smoke.yaml"
    with pytest.raises(BenchError, match="shipped ones: synthetic-smoke"):
        resolve_file("nonexistent-gate")


def test_shipped_smoke_gate_passes(capsys) -> None:
    """The CI gate as shipped: every expected value is what the code produces now."""
    exps = load_expectations(resolve_file(None))
    # every entry of the file (read here by plain yaml, not by the code under test) became one expectation
    raw = yaml.safe_load(resolve_file(None).read_text(encoding="utf-8"))["entries"]
    assert [(e.task, e.retriever, e.metric, e.expected) for e in exps] == \
        [(r["task"], r["retriever"], r["metric"], float(r["expected"])) for r in raw]
    code = main(["check"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert f"all {len(exps)} ok" in out


def test_write_measured_round_trips(tmp_path) -> None:
    path = write(tmp_path / "e.yaml", {"entries": [entry(expected=0.0, tolerance=0.001)]})
    assert main(["check", str(path), "--write-measured", str(tmp_path / "m.yaml")]) == 1
    [exp] = load_expectations(tmp_path / "m.yaml")
    assert exp.expected > 0.1 and exp.tolerance == 0.001
    assert main(["check", str(tmp_path / "m.yaml")]) == 0


def _brute_force(task: str, retriever: str, metric: str, params: dict) -> float:
    """A metric of the shipped gate recomputed without the harness's search or metrics: numpy cosine similarities,
    a stable sort (ties to the lower row, as the harness does), and MRECALL / Recall as docs/architecture.md §4 defines
    them."""
    import numpy as np

    from bench.data.task import build_task

    data = build_task(task, [f"{k}={v}" for k, v in params.items()]).load()
    test = data.split("test")
    docs = data.corpus.vectors / np.linalg.norm(data.corpus.vectors, axis=1, keepdims=True)
    clusters: list[dict[int, set[int]]] = [{} for _ in range(len(test))]
    for q, c, d in zip(test.targets.query.tolist(), test.targets.cluster.tolist(), test.targets.doc.tolist(),
                       strict=True):
        clusters[q].setdefault(c, set()).add(d)
    measure_name, k = metric.split("@")
    k = int(k)
    values = []
    for q in range(len(test)):
        if retriever == "input":
            queries = [test.vectors[q]]
        else:  # oracle: one vector per answer, its cluster's first gold doc
            queries = [data.corpus.vectors[min(docs_)] for _, docs_ in sorted(clusters[q].items())]
        lists = [np.argsort(-(docs @ (v / np.linalg.norm(v))), kind="stable")[:k].tolist() for v in queries]
        merged: list[int] = []
        for rank in range(k):  # round-robin, first occurrence wins
            for lst in lists:
                if rank < len(lst) and lst[rank] not in merged:
                    merged.append(lst[rank])
        top = set(merged[:k])
        hit = sum(1 for docs_ in clusters[q].values() if top & docs_)
        m = len(clusters[q])
        values.append(hit / m if measure_name == "Recall" else float(hit >= min(k, m)))
    return float(np.mean(values))


@pytest.mark.slow
def test_shipped_gate_values_agree_with_a_brute_force_computation() -> None:
    """The shipped expected values came from the code under test (`--write-measured`); this checks each of them
    against an independent numpy computation, within the entry's tolerance."""
    for exp in load_expectations(resolve_file(None)):
        got = _brute_force(exp.task, exp.retriever, exp.metric, exp.task_params)
        assert abs(got - exp.expected) <= exp.tolerance + 1e-9, (exp.where, exp.metric, got, exp.expected)


def test_system_names_are_gate_entries(tmp_path) -> None:
    """An entry may name a whole system (stages and per-stage params); it is run, and found again under its
    canonical name when reading stored results, and a plain retriever's run never stands in for it."""
    results = tmp_path / "results"
    args = [x for k, v in SMALL.items() for x in ("-t", f"{k}={v}")]
    assert main(["run", "--task", "synthetic-linear-single", "--retriever", "oracle,oracle@rrf", "--k", "10",
                 "--results-dir", str(results), *args]) == 0
    rrf = entry(retriever="oracle@rrf", metric="MRECALL@10", expected=0.0, tolerance=1.0)
    [ran] = measure(load_expectations(write(tmp_path / "probe.yaml", {"entries": [rrf]})))
    [read] = measure(load_expectations(write(tmp_path / "read.yaml", {"entries": [rrf]})), read_dir=results)
    assert read.status == "ok" and read.measured == ran.measured
    stored = list((results / "synthetic-linear-single").glob(f"*/{read.run_id}.json"))
    assert [p.parent.name for p in stored] == ["oracle@rrf"]  # the system's own row, not the plain oracle's
