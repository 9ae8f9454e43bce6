"""Figures 1, 5 and 6: what they draw is the data they were given (checked on the figure objects), and `bench plot`
writes PNG and PDF files from real runs."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bench.cli import main
from bench.errors import BenchError
from bench.results import plots
from bench.results.record import RunResult

SMALL = ["-t", "d=32", "-t", "n_train=40", "-t", "n_test=60", "-t", "n_negatives=1500"]
SIMS = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]  # as in tests/results/test_report.py
BASE = [0, 0, 0, 1, 1, 1, 1, 0, 0]
AMER = [1, 1, 1, 1, 1, 1, 1, 0, 0]


def make_run(retriever: str, values: list[float], sims: list[float] = SIMS) -> RunResult:
    """A fabricated run on a toy task: per-query MRECALL@10 values and a target-diversity record."""
    n = len(values)
    return RunResult(
        run_id=f"20260101T000000000Z-{retriever}", task="toy", retriever=retriever, ks=[10],
        query_ids=[f"q{i}" for i in range(n)], per_query={"MRECALL@10": [float(v) for v in values]},
        summary={"MRECALL@10": float(np.mean(values))}, data_hash={"corpus": "c", "test": "t"},
        extra={"target_diversity": {
            "mode": "representative", "space": "vectors", "mean_pairwise_cos_sim": list(sims),
            "mean_pairwise_euclidean": [float(np.sqrt(2 - 2 * s)) for s in sims], "n_answers": [2] * n,
            "n_vectors": [2] * n}},
    )


def test_figure1_draws_the_bin_means() -> None:
    """Same hand-computed bins as tests/results/test_report.py:
    Q1 = {8, 7, 6}, Q2 = {5, 4}, Q3 = {3, 2}, Q4 = {1, 0}."""
    runs = {"single-query": make_run("single-query", BASE), "amer": make_run("amer", AMER)}
    fig = plots.figure1(runs, [10])
    [ax] = fig.axes
    lines = {line.get_label(): line.get_ydata() for line in ax.get_lines()}
    np.testing.assert_allclose(lines["single-query"], [100 / 3, 100, 50, 0])
    np.testing.assert_allclose(lines["amer"], [100 / 3, 100, 100, 100])
    assert [t.get_text().split("\n")[0] for t in ax.get_xticklabels()] == ["Q1", "Q2", "Q3", "Q4"]
    assert "MRECALL@10" in ax.get_ylabel() and "distance" in ax.get_xlabel()
    assert {t.get_text() for t in fig.legends[0].get_texts()} == {"single-query", "amer"}


def test_figure1_split_by_answer_count() -> None:
    n = 80
    rng = np.random.default_rng(0)
    sims = rng.uniform(-0.5, 0.5, n).tolist()
    base, amer = make_run("single-query", [0] * n, sims), make_run("amer", [1] * n, sims)
    for run in (base, amer):
        run.extra["target_diversity"]["n_answers"] = [2] * 50 + [4] * 30
    fig = plots.figure1({"single-query": base, "amer": amer}, [10], by_answers=True, min_group=20)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["MRECALL@10 — m=2", "MRECALL@10 — m=4"]
    sizes = [[int(t.get_text().split("n=")[1]) for t in ax.get_xticklabels()] for ax in fig.axes]
    assert sizes == [[13, 12, 13, 12], [8, 7, 8, 7]]  # quartiles within each answer-count group


def test_figure5_on_an_amer_shaped_run() -> None:
    n = 50
    rng = np.random.default_rng(1)
    target = rng.uniform(-0.3, 0.6, n)
    pred = np.clip(target + rng.normal(0, 0.05, n), -1, 1)
    run = make_run("amer", [1] * n, target.tolist())
    run.extra["output_diversity"] = {"pred_mean_pairwise_cos": pred.tolist(), "target_mean_pairwise_cos":
                                     target.tolist()}
    fig = plots.figure5({"amer": run, "input": make_run("input", [0] * n, target.tolist())})
    [ax] = fig.axes  # one panel: only the run with output diversity
    xy = ax.collections[0].get_offsets()
    np.testing.assert_allclose(xy[:, 0], 1 - target)  # plotted as distances = 1 − similarity
    np.testing.assert_allclose(xy[:, 1], 1 - pred)
    assert "Pearson r = 0.9" in ax.get_title() and "amer (n = 50)" in ax.get_title()
    with pytest.raises(BenchError, match="output_diversity"):
        plots.figure5({"input": make_run("input", [0] * n, target.tolist())})
    run.extra["output_diversity"]["pred_mean_pairwise_cos"] = [0.1]
    with pytest.raises(BenchError, match="1,\\) predictions for \\(50,\\) targets"):
        plots.figure5({"amer": run})


def test_bench_plot_writes_png_and_pdf_from_real_runs(tmp_path, capsys) -> None:
    results, out = tmp_path / "results", tmp_path / "plots"
    for task in ("synthetic-mlp-single", "synthetic-linear-single"):
        assert main(["run", "--task", task, "--retriever", "oracle,input", "--k", "10,100",
                     "--results-dir", str(results), *SMALL]) == 0
    assert main(["plot", "--task", "synthetic-mlp-single,synthetic-linear-single", "--results-dir", str(results),
                 "--out-dir", str(out), "--measure", "recall"]) == 0
    captured = capsys.readouterr()
    assert "Figure 5 skipped" in captured.err  # no AMER run here; "all" skips it with a note
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted([
        "fig1-synthetic-linear-single-recall.pdf", "fig1-synthetic-linear-single-recall.png",
        "fig1-synthetic-mlp-single-recall.pdf", "fig1-synthetic-mlp-single-recall.png",
        "fig6-synthetic-linear-single-synthetic-mlp-single-gold-similarity.pdf",
        "fig6-synthetic-linear-single-synthetic-mlp-single-gold-similarity.png",
    ])
    for p in out.iterdir():
        head = p.read_bytes()[:8]
        assert head.startswith(b"\x89PNG") if p.suffix == ".png" else head.startswith(b"%PDF")
    # Figure 5 asked for explicitly, with no AMER run: one clear error
    assert main(["plot", "--task", "synthetic-mlp-single", "--results-dir", str(results), "--figure", "5",
                 "--out-dir", str(out)]) == 2
    assert "output_diversity" in capsys.readouterr().err


def test_bench_plot_figure5_from_a_stored_run(tmp_path) -> None:
    """A stored run file with the AMER extra (written here) is read back and plotted."""
    results = tmp_path / "results"
    assert main(["run", "--task", "synthetic-mlp-single", "--retriever", "input", "--k", "10",
                 "--results-dir", str(results), *SMALL]) == 0
    path = next(results.glob("synthetic-mlp-single/input/*.json"))
    doc = json.loads(path.read_text())
    sims = doc["extra"]["target_diversity"]["mean_pairwise_cos_sim"]
    doc["extra"]["output_diversity"] = {"pred_mean_pairwise_cos": [s * 0.5 for s in sims]}  # target from the run
    path.write_text(json.dumps(doc))
    assert main(["plot", "--task", "synthetic-mlp-single", "--results-dir", str(results), "--figure", "5",
                 "--out-dir", str(tmp_path / "p")]) == 0
    assert (tmp_path / "p" / "fig5-synthetic-mlp-single-output-diversity.png").stat().st_size > 10_000


def test_figure6_histograms_match_the_stored_statistic() -> None:
    run = make_run("input", BASE)
    edges = np.linspace(-1, 1, 41)
    run.extra["target_diversity"]["gold_similarity"] = {
        "within_mean": 0.9, "random_mean": 0.77, "n_within_pairs": 10, "n_random_pairs": 20, "mode": "representative",
        "seed": 0, "hist_edges": edges.tolist(), "within_hist": [0] * 38 + [10, 0],
        "random_hist": [0] * 37 + [20, 0, 0],
    }
    fig = plots.figure6({"toy": run})
    [ax] = fig.axes
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any("mean 0.900 (10 pairs)" in t for t in labels) and any("mean 0.770 (20 pairs)" in t for t in labels)
    vlines = sorted(line.get_xdata()[0] for line in ax.get_lines())
    assert vlines == pytest.approx([0.77, 0.9])
