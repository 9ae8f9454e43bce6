"""Comparison tables over fabricated runs whose every number is worked out by hand: Δ, the low-similarity subset,
the bins, the asterisk, the refusals, and the five output formats."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest
from rich.console import Console

from bench.errors import BenchError
from bench.results.record import RunResult
from bench.results.report import build_comparison, check_comparable, pick_baseline, render, to_rich

# 9 queries with target similarities 0.1 … 0.9: the 33rd percentile is 0.3 + 0.64 · 0.1 = 0.364, so the
# low-similarity subset is queries 0, 1, 2.
SIMS = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
BASE = [0, 0, 0, 1, 1, 1, 1, 0, 0]  # mean 4/9; 0 on the low-sim subset
AMER = [1, 1, 1, 1, 1, 1, 1, 0, 0]  # mean 7/9; 1 on the low-sim subset


def make_run(retriever: str, values: list[float], sims: list[float] | None = SIMS, run_id: str | None = None,
             corpus: str = "c0", split: str = "test", query_ids: list[str] | None = None) -> RunResult:
    n = len(values)
    extra = {}
    if sims is not None:
        extra["target_diversity"] = {
            "mode": "representative", "space": "vectors",
            "mean_pairwise_cos_sim": sims, "mean_pairwise_euclidean": [float(np.sqrt(2 - 2 * s)) for s in sims],
            "n_answers": [2] * n, "n_vectors": [2] * n,
        }
    return RunResult(
        run_id=run_id or f"20260101T000000000Z-{retriever}", task="toy", retriever=retriever, ks=[10],
        query_ids=query_ids or [f"q{i}" for i in range(n)],
        per_query={"MRECALL@10": [float(v) for v in values], "Recall@10": [float(v) for v in values]},
        summary={"MRECALL@10": float(np.mean(values))}, split=split,
        data_hash={"corpus": corpus, "test": "t0", "train": "x"}, extra=extra,
    )


def runs() -> dict[str, RunResult]:
    return {"single-query": make_run("single-query", BASE), "amer": make_run("amer", AMER),
            "copy": make_run("copy", BASE)}


def test_reference_low_sim_rule_by_hand() -> None:
    """--low-sim reference: distances √(2 − 2·sim) run from 1.34 (sim 0.1) to 0.45 (sim 0.9); the 3/4 quantile by
    nearest rank is the 7th smallest of 9 (position 6), the distance of sim 0.3, and strictly above it lie the
    queries of sim 0.1 and 0.2 — here the same direction as the paper's rule, one query fewer."""
    rs = runs()
    comp = build_comparison(rs, ks=[10], low_sim="reference")
    low = next(s for s in comp.subsets if s.name == "low-sim")
    assert np.flatnonzero(low.mask).tolist() == [0, 1]
    assert comp.low_sim_threshold == pytest.approx(np.sqrt(2 - 2 * 0.3))
    assert comp.low_sim_rule == "reference"
    assert any("the diversity run predates the distances without zero pairs" in n for n in comp.notes)
    text = render(comp, "markdown")
    assert "3/4 quantile, nearest rank: the reference analysis script's rule" in text
    assert json.loads(render(comp, "json"))["low_sim_rule"] == "reference"
    with pytest.raises(BenchError, match="low-similarity rule must be one of paper, reference"):
        build_comparison(rs, ks=[10], low_sim="median")
    # a run that stores the distances without zero pairs is read from those
    for run in rs.values():
        run.extra["target_diversity"]["mean_pairwise_euclidean_nonzero"] = [float(9 - i) for i in range(9)]
    low = next(s for s in build_comparison(rs, ks=[10], low_sim="reference").subsets if s.name == "low-sim")
    assert np.flatnonzero(low.mask).tolist() == [0, 1]  # 9 and 8 lie above the quantile 7


def test_whole_set_low_sim_and_delta_by_hand() -> None:
    comp = build_comparison(runs(), ks=[10], show_ci=True)
    assert comp.baseline == "single-query" and comp.systems == ["single-query", "amer", "copy"]
    assert comp.low_sim_threshold == pytest.approx(0.364)
    low = next(s for s in comp.subsets if s.name == "low-sim")
    assert np.flatnonzero(low.mask).tolist() == [0, 1, 2]

    base = comp.cell("single-query", "MRECALL@10", "all")
    assert base.value == pytest.approx(4 / 9) and base.test is None
    amer = comp.cell("amer", "MRECALL@10", "all")
    assert amer.value == pytest.approx(7 / 9)
    assert amer.rel_gain == pytest.approx(0.75)  # (7/9 − 4/9) / (4/9)
    # the difference is +1 on queries 0–2 and 0 elsewhere: a resample shows no gain only when it draws none of
    # them, with probability (6/9)^9 = 0.026, so p ≈ 0.026 < 0.05
    assert amer.test.p_value == pytest.approx((6 / 9) ** 9, abs=0.006) and amer.test.significant
    amer_low = comp.cell("amer", "MRECALL@10", "low-sim")
    assert amer_low.value == 1.0 and amer_low.n_queries == 3
    assert amer_low.test.p_value == 0.0 and amer_low.rel_gain != amer_low.rel_gain  # NaN: baseline is 0 there
    copy = comp.cell("copy", "MRECALL@10", "all")
    assert copy.rel_gain == 0.0 and copy.test.p_value == 1.0 and not copy.test.significant
    assert (copy.test.ci_low, copy.test.ci_high) == (0.0, 0.0)


def test_bins_by_hand() -> None:
    """Cosine distances 0.9 … 0.1; ascending they are queries 8, 7, 6, …, 0 and ⌊4i/9⌋ gives bin sizes 3, 2, 2, 2:
    Q1 = {8, 7, 6}, Q2 = {5, 4}, Q3 = {3, 2}, Q4 = {1, 0}."""
    comp = build_comparison(runs(), ks=[10], bins=True)
    assert [np.flatnonzero(b.mask).tolist() for b in comp.bins] == [[6, 7, 8], [4, 5], [2, 3], [0, 1]]
    base = [comp.cell("single-query", "MRECALL@10", b.name).value for b in comp.bins]
    amer = [comp.cell("amer", "MRECALL@10", b.name).value for b in comp.bins]
    assert base == pytest.approx([1 / 3, 1.0, 0.5, 0.0])
    assert amer == pytest.approx([1 / 3, 1.0, 1.0, 1.0])
    assert comp.bins[0].label == "Q1 [0.100, 0.300]"
    by_euclid = build_comparison(runs(), ks=[10], bins=True, bin_by="euclidean")
    assert [b.mask.tolist() for b in by_euclid.bins] == [b.mask.tolist() for b in comp.bins]  # monotone in cosine


def test_baseline_choice() -> None:
    assert pick_baseline(["amer", "single-query"], None) == ("single-query", None)
    name, note = pick_baseline(["input", "amer"], None)
    assert name == "amer" and "--baseline" in note
    assert pick_baseline(["input", "amer"], "input") == ("input", None)
    with pytest.raises(BenchError, match="not among the compared systems: input, amer"):
        pick_baseline(["input", "amer"], "bm25")
    comp = build_comparison({"input": make_run("input", BASE), "amer": make_run("amer", AMER)}, ks=[10])
    assert comp.baseline == "amer" and any("choose one with --baseline" in n for n in comp.notes)


def test_refuses_runs_of_different_data() -> None:
    base = make_run("single-query", BASE)
    with pytest.raises(BenchError, match="corpus differs"):
        check_comparable({"a": base, "b": make_run("amer", AMER, corpus="c1")})
    with pytest.raises(BenchError, match="different splits"):
        check_comparable({"a": base, "b": make_run("amer", AMER, split="dev")})
    shuffled = [f"q{i}" for i in reversed(range(9))]
    with pytest.raises(BenchError, match="different order"):
        check_comparable({"a": base, "b": make_run("amer", AMER, query_ids=shuffled)})
    other = [f"q{i}" for i in range(1, 10)]
    with pytest.raises(BenchError, match="query sets differ"):
        check_comparable({"a": base, "b": make_run("amer", AMER, query_ids=other)})


def test_diversity_comes_from_the_baseline_run() -> None:
    """Another run carrying different similarities must not change the subset: the baseline's values decide."""
    rs = runs()
    rs["amer"] = make_run("amer", AMER, sims=list(reversed(SIMS)))
    comp = build_comparison(rs, ks=[10])
    assert np.flatnonzero(comp.subsets[1].mask).tolist() == [0, 1, 2]
    assert comp.diversity_source.startswith("single-query run")
    # a baseline without a record borrows one and says so
    rs["single-query"] = make_run("single-query", BASE, sims=None)
    comp = build_comparison(rs, ks=[10])
    assert np.flatnonzero(comp.subsets[1].mask).tolist() == [6, 7, 8]
    assert any("bins use amer run" in n for n in comp.notes)


def test_runs_without_diversity_still_compare_on_the_whole_set() -> None:
    rs = {"single-query": make_run("single-query", BASE, sims=None), "amer": make_run("amer", AMER, sims=None)}
    comp = build_comparison(rs, ks=[10])
    assert [s.name for s in comp.subsets] == ["all"] and any("not available" in n for n in comp.notes)
    with pytest.raises(BenchError, match="--bins needs"):
        build_comparison(rs, ks=[10], bins=True)


def test_missing_metric_is_one_clear_error() -> None:
    with pytest.raises(BenchError, match="has no MRECALL@100"):
        build_comparison(runs(), ks=[100])


def test_formats() -> None:
    comp = build_comparison(runs(), ks=[10], bins=True, show_ci=True)
    md = render(comp, "markdown")
    assert "| system | MRECALL@10 | Δ | 95% CI (diff) | MRECALL@10 low-sim |" in md
    assert "| amer | 77.78* | +75.0% |" in md and "| copy | 44.44 | +0.0% |" in md
    assert "single-query (baseline)" in md and "Q1 [0.100, 0.300] n=3" in md

    tex = render(comp, "latex")
    assert r"\begin{tabular}" in tex and r"+75.0\%" in tex and r"$\Delta$" in tex and "%" not in tex.replace(r"\%", "")

    rows = list(csv.DictReader(io.StringIO(render(comp, "csv"))))
    assert len(rows) == 3 * 1 * (2 + 4)  # systems × metrics × (all, low-sim, 4 bins)
    amer = next(r for r in rows if r["system"] == "amer" and r["subset"] == "all")
    assert float(amer["rel_gain"]) == pytest.approx(0.75) and amer["significant"] == "True"
    assert float(amer["value"]) == pytest.approx(7 / 9) and float(amer["baseline_value"]) == pytest.approx(4 / 9)

    doc = json.loads(render(comp, "json"))
    assert doc["baseline"] == "single-query" and doc["subsets"]["low-sim"]["n_queries"] == 3
    assert doc["bootstrap"]["n_resamples"] == 10_000 and len(doc["rows"]) == 18

    console = Console(record=True, width=250, file=io.StringIO())
    for table in to_rich(comp):
        console.print(table)
    text = console.export_text()
    assert "77.78*" in text and "+75.0%" in text and "p < 0.05" in text and "per quartile" in text
    with pytest.raises(BenchError, match="unknown format"):
        render(comp, "html")


def test_query_side_cost_table() -> None:
    """Searches and LLM calls per query come from each run's `extra.query_cost`; an AMER run stored before that
    record gives its `vectors_per_query.mean_searched`; a run with neither shows "–"."""
    rs = runs()
    rs["single-query"].extra["query_cost"] = {"searches_per_query": 1.0, "llm_calls_per_query": 0.0}
    rs["amer"].extra["vectors_per_query"] = {"mean_searched": 3.48}
    rs["copy"].extra["query_cost"] = {"searches_per_query": 1.0, "llm_calls_per_query": 0.4567}
    comp = build_comparison(rs, ks=[10])
    assert comp.costs["amer"] == {"searches_per_query": 3.48, "llm_calls_per_query": None}
    md = render(comp, "markdown")
    assert "**toy: query-side cost (mean per test query)**" in md
    assert "| system | searches / query | LLM calls / query |" in md
    assert "| single-query (baseline) | 1.00 | 0.00 |" in md
    assert "| amer | 3.48 | – |" in md and "| copy | 1.00 | 0.46 |" in md
    rows = list(csv.DictReader(io.StringIO(render(comp, "csv"))))
    assert {r["llm_calls_per_query"] for r in rows if r["system"] == "copy"} == {"0.4567"}
    assert json.loads(render(comp, "json"))["costs"]["amer"]["searches_per_query"] == 3.48
    # no run records a cost: no cost table
    assert "query-side cost" not in render(build_comparison(runs(), ks=[10]), "markdown")
