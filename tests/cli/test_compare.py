"""`bench compare` end to end over real synthetic runs: the table, the formats, the refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.cli import main

TASK = "synthetic-mlp-single"
SMALL = ["-t", "d=32", "-t", "n_train=40", "-t", "n_test=60", "-t", "n_negatives=1500"]


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("results")
    assert main(["run", "--task", TASK, "--retriever", "oracle,input", "--k", "10,100", "--results-dir", str(root),
                 *SMALL]) == 0
    return root


def test_compare_prints_the_table(results, capsys) -> None:
    capsys.readouterr()
    assert main(["compare", "--task", TASK, "--results-dir", str(results), "--ci", "--bins"]) == 0
    out = capsys.readouterr().out
    for text in ("MRECALL@10 low-sim", "MRECALL@100", "input (baseline)", "100.00*", "95% CI (diff)",
                 "no 'single-query' run: baseline is 'input'", "low-sim = 20 queries", "per quartile",
                 "Q1 [", "n=15", "10,000 resamples"):
        assert text in out, text
    oracle = next(line for line in out.splitlines() if line.startswith("│ oracle"))
    assert "n/a" in oracle  # Δ against a baseline that scores 0 is undefined, not infinite


def test_low_sim_rule_option_and_task_sizes(results, capsys) -> None:
    """--low-sim reference takes the reference analysis script's subset (a quarter by Euclidean distance, 60 queries
    → 15 strictly above the nearest-rank 3/4 quantile when no two tie); the caption names the task's sizes."""
    capsys.readouterr()
    assert main(["compare", "--task", TASK, "--results-dir", str(results), "--low-sim", "reference",
                 "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["low_sim_rule"] == "reference" and doc["subsets"]["low-sim"]["n_queries"] == 15
    assert doc["task_scale"].startswith("custom sizes (d=32, 40 train / 60 test, corpus 2,000;")
    assert main(["compare", "--task", TASK, "--results-dir", str(results), "--format", "markdown"]) == 0
    out = capsys.readouterr().out
    assert "task sizes: custom sizes (d=32" in out and "low-sim = 20 queries" in out


def test_formats_to_files(results, tmp_path, capsys) -> None:
    md, js, tex, cs, txt = (tmp_path / f"t.{ext}" for ext in ("md", "json", "tex", "csv", "txt"))
    base = ["compare", "--task", TASK, "--results-dir", str(results), "--baseline", "oracle", "--k", "10"]
    assert main([*base, "--format", "markdown", "--output", str(md)]) == 0
    assert main([*base, "--format", "json", "--output", str(js)]) == 0
    assert main([*base, "--format", "latex", "--output", str(tex)]) == 0
    assert main([*base, "--format", "csv", "--output", str(cs), "--measure", "recall"]) == 0
    assert main([*base, "--output", str(txt)]) == 0
    assert "| oracle (baseline) | 100.00 |" in md.read_text()
    assert "| input | 0.00* | -100.0% |" in md.read_text()  # significantly worse: the asterisk marks p < 0.05
    doc = json.loads(js.read_text())
    assert doc["baseline"] == "oracle" and doc["ks"] == [10] and doc["subsets"]["all"]["n_queries"] == 60
    assert r"\begin{tabular}" in tex.read_text()
    assert cs.read_text().splitlines()[0].startswith("task,split,system,run_id,baseline,metric,subset")
    assert "Recall@10" in cs.read_text()
    assert "oracle (baseline)" in txt.read_text() and "┃" in txt.read_text()


def test_explicit_run_files(results, capsys) -> None:
    files = sorted(results.glob(f"{TASK}/*/*.json"))
    capsys.readouterr()
    assert main(["compare", *sum((["--run", str(f)] for f in files), []), "--baseline", "input",
                 "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["systems"] == ["input", "oracle"]


def test_refuses_runs_on_different_data(results, tmp_path, capsys) -> None:
    mixed = tmp_path / "mixed"
    other = [*SMALL[:-1], "n_negatives=1000"]
    assert main(["run", "--task", TASK, "--retriever", "oracle", "--k", "10", "--results-dir", str(mixed), *SMALL]) == 0
    assert main(["run", "--task", TASK, "--retriever", "input", "--k", "10", "--results-dir", str(mixed), *other]) == 0
    capsys.readouterr()
    assert main(["compare", "--task", TASK, "--results-dir", str(mixed)]) == 2
    err = capsys.readouterr().err
    assert "cannot compare" in err and "corpus differs" in err and "task params differ: n_negatives=1500 vs 1000" in err


@pytest.mark.parametrize(("args", "message"), [
    (["--task", "synthetic-linear-ood"], "no runs of task 'synthetic-linear-ood'"),
    (["--task", TASK, "--baseline", "bm25"], "baseline 'bm25' is not among the compared systems"),
    (["--task", TASK, "--measure", "ndcg"], "unknown measure 'ndcg'"),
    (["--task", TASK, "--k", "5"], "has no MRECALL@5"),
])
def test_bad_input_is_one_line(results, capsys, args, message) -> None:
    capsys.readouterr()
    assert main(["compare", "--results-dir", str(results), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
