"""Comparison tables: systems × MRECALL@k on the whole test set and the low-similarity subset, Δ against a baseline,
paired-bootstrap significance; per-diversity-bin tables on request. One data model (`Comparison`), five renderings:
rich, Markdown, LaTeX, CSV (long form, one row per system × metric × subset) and JSON.

Values are means over queries, printed ×100; Δ = (B − A)/A is printed in %; "*" marks p < 0.05; the CI is that of the
difference B − A in points (×100).
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from rich.markup import escape
from rich.table import Table

from bench.errors import BenchError
from bench.metrics import diversity as div
from bench.metrics.stats import ALPHA, N_RESAMPLES, BootstrapResult, paired_bootstrap_many, relative_gain
from bench.results.record import RunResult

FORMATS = ("rich", "markdown", "latex", "csv", "json")
DEFAULT_BASELINE = "single-query"
WHOLE = "all"
LOW_SIM = "low-sim"


@dataclass
class Cell:
    """One system's mean on one metric and query subset, and its test against the baseline (None for the baseline)."""

    value: float
    n_queries: int
    test: BootstrapResult | None = None

    @property
    def rel_gain(self) -> float | None:
        return None if self.test is None else relative_gain(self.test.mean_a, self.test.mean_b)


@dataclass
class Subset:
    """A set of test queries the table reports on: the whole set, the low-similarity third, or a diversity bin."""

    name: str
    label: str
    mask: np.ndarray

    @property
    def n(self) -> int:
        return int(self.mask.sum())


@dataclass
class Comparison:
    """Everything a comparison table shows, before formatting."""

    task: str
    split: str
    measure: str
    ks: list[int]
    baseline: str
    systems: list[str]
    run_ids: dict[str, str]
    subsets: list[Subset]
    bins: list[Subset]
    cells: dict[tuple[str, str, str], Cell]  # (system, metric, subset name) → cell
    n_queries: int
    n_resamples: int
    seed: int
    ci_method: str
    show_ci: bool
    diversity_source: str | None
    bin_by: str
    low_sim_threshold: float | None
    notes: list[str] = field(default_factory=list)
    costs: dict[str, dict[str, float | None]] = field(default_factory=dict)  # system → query_cost (run_cost)
    low_sim_rule: str = "paper"  # bench/metrics/diversity.py LOW_SIM_RULES
    task_scale: str | None = None  # the task's sizes in words, when it records them (synthetic tasks)

    @property
    def metrics(self) -> list[str]:
        return [f"{self.measure}@{k}" for k in self.ks]

    def cell(self, system: str, metric: str, subset: str) -> Cell:
        return self.cells[(system, metric, subset)]


COST_COLUMNS = {"searches_per_query": "searches / query", "llm_calls_per_query": "LLM calls / query"}


def run_cost(run: RunResult) -> dict[str, float | None]:
    """A run's query-side cost (`extra.query_cost`, bench/systems/pipeline.py `query_cost`): searches and LLM calls per
    query. Runs stored before it was recorded give AMER's `vectors_per_query.mean_searched` when present, else None."""
    cost = run.extra.get("query_cost") or {}
    out = {key: cost.get(key) for key in COST_COLUMNS}
    if out["searches_per_query"] is None:
        out["searches_per_query"] = (run.extra.get("vectors_per_query") or {}).get("mean_searched")
    return out


def check_comparable(runs: Mapping[str, RunResult]) -> None:
    """Refuse runs that were not evaluated on the same queries of the same data: same task, split, query ids in the
    same order, the same corpus and the same split content (data_hash)."""
    items = list(runs.items())
    if not items:
        raise BenchError("no runs to compare")
    ref_name, ref = items[0]
    for name, run in items[1:]:
        where = f"cannot compare {name!r} (run {run.run_id}) with {ref_name!r} (run {ref.run_id})"
        if run.task != ref.task:
            raise BenchError(f"{where}: different tasks ({run.task} vs {ref.task})")
        if run.split != ref.split:
            raise BenchError(f"{where}: different splits ({run.split} vs {ref.split})")
        params = _param_diff(run.task_params, ref.task_params)
        for part in ("corpus", ref.split):
            a, b = run.data_hash.get(part), ref.data_hash.get(part)
            if a != b:
                what = "corpus" if part == "corpus" else f"{part} split"
                raise BenchError(f"{where}: their {what} differs (data hash {str(a)[:12]}… vs {str(b)[:12]}…)"
                                 + (f"; task params differ: {params}" if params else "")
                                 + ("; compare runs on one corpus by naming their files with --run FILE (repeatable)"
                                    if part == "corpus" else ""))
        if run.query_ids != ref.query_ids:
            if set(run.query_ids) != set(ref.query_ids):
                n_diff = len(set(run.query_ids) ^ set(ref.query_ids))
                raise BenchError(f"{where}: their query sets differ ({n_diff} query ids are in only one of them)")
            raise BenchError(f"{where}: same queries in a different order; per-query values would not pair up")


def _param_diff(a: Mapping[str, Any], b: Mapping[str, Any]) -> str:
    keys = sorted(set(a) | set(b))
    return ", ".join(f"{k}={a.get(k)!r} vs {b.get(k)!r}" for k in keys if a.get(k) != b.get(k))


def pick_baseline(names: Sequence[str], baseline: str | None) -> tuple[str, str | None]:
    """The baseline system and, when it was not the user's choice, a note saying how it was picked."""
    if baseline is not None:
        if baseline not in names:
            raise BenchError(f"baseline {baseline!r} is not among the compared systems: {', '.join(names)}")
        return baseline, None
    if DEFAULT_BASELINE in names:
        return DEFAULT_BASELINE, None
    chosen = sorted(names)[0]
    return chosen, (f"no {DEFAULT_BASELINE!r} run: baseline is {chosen!r} (first system by name); "
                    "choose one with --baseline")


def diversity_of(runs: Mapping[str, RunResult], baseline: str) -> tuple[div.TargetDiversity | None, str | None]:
    """Per-query target diversity for binning: the baseline run's record, else the first run that has one."""
    order = [baseline] + [n for n in runs if n != baseline]
    for name in order:
        rec = runs[name].extra.get(div.RECORD_KEY)
        if rec:
            td = div.from_record(rec, source=f"run {runs[name].run_id}")
            if len(td) != len(runs[name].query_ids):
                raise BenchError(f"run {runs[name].run_id}: extra.{div.RECORD_KEY} has {len(td)} values for "
                                 f"{len(runs[name].query_ids)} queries")
            space = rec.get("space", "?")
            return td, f"{name} run {runs[name].run_id} (space {space}, target mode {td.mode})"
    return None, None


def available_ks(runs: Mapping[str, RunResult], measure: str) -> list[int]:
    """The cutoffs k at which every run has `measure`@k."""
    common: set[int] | None = None
    for run in runs.values():
        ks = {int(name.split("@")[1]) for name in run.per_query if name.split("@")[0] == measure}
        common = ks if common is None else common & ks
    return sorted(common or set())


def build_comparison(runs: Mapping[str, RunResult], baseline: str | None = None, measure: str = "MRECALL",
                     ks: Sequence[int] | None = None, bins: bool = False, bin_by: str = "cosine",
                     n_bins: int = div.N_BINS, n_resamples: int = N_RESAMPLES, seed: int = 0,
                     ci_method: str = "bca", show_ci: bool = False, low_sim: str = "paper") -> Comparison:
    """Compare systems (label → run) against a baseline on the whole set, the low-similarity subset and (with
    `bins`) each diversity bin. Bins and the subset come from one run's target diversity (the baseline's). `low_sim`
    picks the subset's rule: "paper" (33rd percentile of cosine similarity) or "reference" (the reference analysis
    script's top quarter by Euclidean distance)."""
    if low_sim not in div.LOW_SIM_RULES:
        raise BenchError(f"low-similarity rule must be one of {', '.join(div.LOW_SIM_RULES)}, got {low_sim!r}")
    check_comparable(runs)
    names = list(runs)
    base, note = pick_baseline(names, baseline)
    notes = [note] if note else []
    ref = runs[base]
    n = len(ref.query_ids)
    if ks is None:
        ks = available_ks(runs, measure)
        if not ks:
            raise BenchError(f"the runs share no {measure}@k metric")
    metrics = [f"{measure}@{k}" for k in ks]
    for name, run in runs.items():
        missing = [m for m in metrics if m not in run.per_query]
        if missing:
            raise BenchError(f"run {run.run_id} ({name}) has no {', '.join(missing)}; "
                             f"it has {', '.join(run.per_query)}")

    td, source = diversity_of(runs, base)
    answers: list[list[int]] = [list(r.extra["answers_per_query"]) for r in runs.values()
                                if r.extra.get("answers_per_query")]
    single = bool(answers) and max(max(a) for a in answers) <= 1
    if single and bins:
        raise BenchError("--bins needs queries with two or more answers (target diversity is a pairwise "
                         "similarity); every query of this task has one")
    if td is None and bins:
        raise BenchError("--bins needs per-query target diversity, and none of the runs has it; rerun them")
    subsets = [Subset(WHOLE, "all", np.ones(n, dtype=bool))]
    bin_subsets: list[Subset] = []
    threshold = None
    if td is None and single:
        notes.append("every query has one answer, so target similarity (a mean over pairs of answers) is undefined "
                     "and there is no low-similarity subset: only the whole set is compared")
    elif td is None:
        notes.append("no run records per-query target diversity (runs of lexical systems have no document "
                     "embeddings; older runs were made before it was stored): the low-similarity subset and bins are "
                     "not available; add a dense system's run, or rerun `bench run`")
    elif bool(np.all(np.isnan(td.cos_sim))):
        # every query has one answer (one target vector): target similarity is undefined, so there is no
        # low-similarity subset or bin to report; the whole set is still compared
        if bins:
            raise BenchError("--bins needs queries with two or more answers (target diversity is a pairwise "
                             "similarity); every query of this task has one")
        notes.append("every query has one answer, so target similarity (a mean over pairs of answers) is undefined "
                     "and there is no low-similarity subset: only the whole set is compared")
    else:
        if source and not source.startswith(base):
            notes.append(f"the baseline run has no target diversity; bins use {source}")
        if low_sim == "paper":
            threshold = div.low_similarity_threshold(td.cos_sim)
            low = div.low_similarity_mask(td.cos_sim)
            if low.sum() == np.sum(~np.isnan(td.cos_sim)):
                notes.append("every query has the same target similarity, so the low-similarity subset is the whole "
                             "set")
        else:
            distance = td.euclidean_nonzero
            if distance is None:
                distance = td.euclidean
                notes.append("the diversity run predates the distances without zero pairs: the reference rule "
                             "uses the mean over every pair")
            threshold = div.reference_low_similarity_threshold(distance)
            low = div.reference_low_similarity_mask(distance)
            if not low.any():
                notes.append("no query lies strictly above the 3/4 quantile of target distance (all are equally "
                             "diverse): the reference rule's subset is empty")
        subsets.append(Subset(LOW_SIM, "low-sim", low))
        if bins:
            values = td.distance(bin_by)
            b = div.quartile_bins(values, n_bins)
            ranges = div.bin_ranges(values, b, n_bins)
            for i, (lo, hi, _size) in enumerate(ranges):
                bin_subsets.append(Subset(f"Q{i + 1}", f"Q{i + 1} [{lo:.3f}, {hi:.3f}]", b == i))
            ties = [f"Q{i + 1}/Q{i + 2}" for i in range(n_bins - 1)
                    if ranges[i][2] and ranges[i + 1][2] and round(ranges[i][1], 12) >= round(ranges[i + 1][0], 12)]
            if ties:
                notes.append(f"queries with equal {bin_by} diversity straddle bin boundaries {', '.join(ties)}; "
                             "they are split by query order")

    others = [s for s in names if s != base]
    cells: dict[tuple[str, str, str], Cell] = {}
    for metric in metrics:
        base_vals = ref.values(metric)
        for subset in subsets + bin_subsets:
            mask = subset.mask
            cells[(base, metric, subset.name)] = Cell(float(base_vals[mask].mean()) if mask.any() else math.nan,
                                                      int(mask.sum()))
            if not others:
                continue
            if not mask.any():
                for s in others:
                    cells[(s, metric, subset.name)] = Cell(math.nan, 0)
                continue
            sys_vals = np.stack([runs[s].values(metric)[mask] for s in others])
            tests = paired_bootstrap_many(base_vals[mask], sys_vals, n_resamples, seed, ci_method,
                                          with_ci=show_ci)
            for s, test in zip(others, tests, strict=True):
                cells[(s, metric, subset.name)] = Cell(test.mean_b, int(mask.sum()), test)
    return Comparison(
        task=ref.task, split=ref.split, measure=measure, ks=list(ks), baseline=base, systems=[base] + others,
        run_ids={s: runs[s].run_id for s in names}, subsets=subsets, bins=bin_subsets, cells=cells, n_queries=n,
        n_resamples=n_resamples, seed=seed, ci_method=ci_method, show_ci=show_ci, diversity_source=source,
        bin_by=bin_by, low_sim_threshold=threshold, notes=notes, costs={s: run_cost(runs[s]) for s in names},
        low_sim_rule=low_sim, task_scale=ref.task_info.get("scale"),
    )


# ----------------------------------------------------------------------------------------------------- formatting

def display_name(name: str, width: int = 32) -> str:
    """A system name short enough for a table row (`st:/long/path/to/model` keeps its start and end)."""
    if len(name) <= width:
        return name
    head = width // 3
    return name[:head] + "…" + name[-(width - head - 1):]


def _value(cell: Cell) -> str:
    if math.isnan(cell.value):
        return "–"
    star = "*" if cell.test is not None and cell.test.significant else ""
    return f"{100 * cell.value:.2f}{star}"


def _gain(cell: Cell, pct: str = "%") -> str:
    if cell.test is None:
        return "–"
    g = cell.rel_gain
    if g is None or not math.isfinite(g):
        return "n/a"
    return f"{100 * g:+.1f}{pct}"


def _ci(cell: Cell) -> str:
    if cell.test is None or not math.isfinite(cell.test.ci_low):
        return "–"
    return f"[{100 * cell.test.ci_low:+.2f}, {100 * cell.test.ci_high:+.2f}]"


def grid(comp: Comparison, which: str = "main", pct: str = "%", metric: str | None = None
         ) -> tuple[list[str], list[list[str]]]:
    """Header and rows of a table: which="main" → whole set and low-sim of every metric, value and Δ in separate
    columns; which="bins" → one metric (`metric`), a column per diversity bin, each cell "value* (Δ)"."""
    if which == "bins":
        header = ["system"] + [f"{b.name} {b.label[len(b.name) + 1:]} n={b.n}" for b in comp.bins]
        rows = []
        for system in comp.systems:
            row = [system + (" (baseline)" if system == comp.baseline else "")]  # full name: it re-runs as --retriever
            for b in comp.bins:
                c = comp.cell(system, metric or comp.metrics[0], b.name)
                text = _value(c) + ("" if c.test is None else f" ({_gain(c, pct)})")
                row.append(text + (f" {_ci(c)}" if comp.show_ci and c.test is not None else ""))
            rows.append(row)
        return header, rows
    header = ["system"]
    for m in comp.metrics:
        for subset in comp.subsets:
            name = m if subset.name == WHOLE else f"{m} {subset.label}"
            header += [name, "Δ"] + (["95% CI (diff)"] if comp.show_ci else [])
    rows = []
    for system in comp.systems:
        row = [system + (" (baseline)" if system == comp.baseline else "")]  # full name: it re-runs as --retriever
        for m in comp.metrics:
            for subset in comp.subsets:
                c = comp.cell(system, m, subset.name)
                row += [_value(c), _gain(c, pct)] + ([_ci(c)] if comp.show_ci else [])
        rows.append(row)
    return header, rows


def cost_grid(comp: Comparison) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the query-side cost table: searches and LLM calls per query ("–" where not recorded)."""
    header = ["system", *COST_COLUMNS.values()]
    rows = []
    for system in comp.systems:
        cost = comp.costs.get(system, {})
        rows.append([system + (" (baseline)" if system == comp.baseline else "")]
                    + ["–" if cost.get(key) is None else f"{cost[key]:.2f}" for key in COST_COLUMNS])
    return header, rows


def tables(comp: Comparison) -> list[tuple[str, list[str], list[list[str]]]]:
    """(title, header, rows) of every table: the main one, then one per metric with the bins (when computed), then
    the query-side cost (when any run records it)."""
    out = [("whole set and low-similarity subset", *grid(comp, "main"))]
    if comp.bins:
        for m in comp.metrics:
            out.append((f"{m} per quartile of target {comp.bin_by} distance (Q1 least diverse)",
                        *grid(comp, "bins", metric=m)))
    if any(v is not None for cost in comp.costs.values() for v in cost.values()):
        out.append(("query-side cost (mean per test query)", *cost_grid(comp)))
    return out


def caption(comp: Comparison) -> list[str]:
    """The lines that say what the table shows and how it was computed."""
    lines = [f"{comp.task} — {comp.split} split, {comp.n_queries} queries; values = mean {comp.measure}@k × 100; "
             f"Δ = (B − A)/A against baseline A = {comp.baseline}"]
    lines.append(f"* p < {ALPHA} (paired bootstrap over queries, {comp.n_resamples:,} resamples, seed {comp.seed}"
                 + (f"; {int(100 * 0.95)}% CI of B − A in points, {comp.ci_method}" if comp.show_ci else "") + ")")
    if comp.show_ci:
        lines.append("p = 1 − share of resamples with the observed sign, a one-sided share: a * next to a 95% CI "
                     "that touches 0 is possible")
    if comp.task_scale:
        lines.append(f"task sizes: {comp.task_scale}")
    for subset in comp.subsets:
        if subset.name == LOW_SIM and comp.low_sim_rule == "reference":
            lines.append(f"low-sim = {subset.n} queries whose mean pairwise target Euclidean distance (zero distances "
                         f"left out) is > {comp.low_sim_threshold:.4f} (3/4 quantile, nearest rank: the reference "
                         "analysis script's rule; --low-sim paper for the paper's)")
        elif subset.name == LOW_SIM:
            lines.append(f"low-sim = {subset.n} queries whose mean pairwise target cosine similarity is ≤ "
                         f"{comp.low_sim_threshold:.4f} (33rd percentile)")
    if comp.diversity_source:
        lines.append(f"target diversity from {comp.diversity_source}")
    if comp.bins:
        lines.append(f"bins: quartiles of mean pairwise {comp.bin_by} distance between targets, Q1 = least diverse; "
                     f"sizes {', '.join(str(b.n) for b in comp.bins)}")
    lines += [f"note: {n}" for n in comp.notes]
    return lines


def to_rich(comp: Comparison) -> list[Table]:
    out = []
    for i, (title, header, rows) in enumerate(tables(comp)):
        table = Table(title=f"{comp.task}: {title}", caption=escape("\n".join(caption(comp))) if i == 0 else None,
                      caption_justify="left")
        for j, h in enumerate(header):
            table.add_column(h, justify="left" if j == 0 else "right", no_wrap=j == 0)
        for row in rows:
            table.add_row(*(escape(c) for c in row))  # system names like amer[sampling=teacher] are not markup
        out.append(table)
    return out


def to_markdown(comp: Comparison) -> str:
    out = []
    for title, header, rows in tables(comp):
        out.append(f"**{comp.task}: {title}**")
        out.append("")
        out.append("| " + " | ".join(header) + " |")
        out.append("|" + "|".join([":---"] + ["---:"] * (len(header) - 1)) + "|")
        out += ["| " + " | ".join(r) + " |" for r in rows]
        out.append("")
    out += [f"{line}  " for line in caption(comp)]
    return "\n".join(out) + "\n"


_LATEX_ESCAPE = {"&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}",
                 "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "\\": r"\textbackslash{}",
                 "Δ": r"$\Delta$", "–": "--", "≤": r"$\leq$", "−": "-", "×": r"$\times$", "ρ": r"$\rho$"}


def _tex(text: str) -> str:
    return "".join(_LATEX_ESCAPE.get(ch, ch) for ch in text)


def to_latex(comp: Comparison) -> str:
    """booktabs tables (\\usepackage{booktabs}); the caption of the first says how everything was computed."""
    out = []
    for i, (title, header, rows) in enumerate(tables(comp)):
        out.append(r"\begin{table}[t]")
        out.append(r"\centering")
        out.append(r"\begin{tabular}{l" + "r" * (len(header) - 1) + "}")
        out.append(r"\toprule")
        out.append(" & ".join(_tex(h) for h in header) + r" \\")
        out.append(r"\midrule")
        out += [" & ".join(_tex(c) for c in r) + r" \\" for r in rows]
        out.append(r"\bottomrule")
        out.append(r"\end{tabular}")
        text = f"{comp.task}: {title}." + (" " + ". ".join(caption(comp)) if i == 0 else "")
        out.append(r"\caption{" + _tex(text) + "}")
        out.append(r"\end{table}")
        out.append("")
    return "\n".join(out)


def records(comp: Comparison) -> list[dict[str, Any]]:
    """Long form: one record per system × metric × subset (whole set, low-sim, bins)."""
    out = []
    for system in comp.systems:
        for metric in comp.metrics:
            for subset in comp.subsets + comp.bins:
                c = comp.cell(system, metric, subset.name)
                t = c.test
                out.append({
                    "task": comp.task, "split": comp.split, "system": system, "run_id": comp.run_ids[system],
                    "baseline": comp.baseline, "metric": metric, "subset": subset.name, "subset_label": subset.label,
                    "n_queries": c.n_queries, "value": _num(c.value),
                    "baseline_value": _num(t.mean_a) if t else _num(c.value),
                    "diff": _num(t.diff) if t else None, "rel_gain": _num(c.rel_gain) if t else None,
                    "p_value": _num(t.p_value) if t else None, "significant": t.significant if t else None,
                    "ci_low": _num(t.ci_low) if t else None, "ci_high": _num(t.ci_high) if t else None,
                    **{key: comp.costs.get(system, {}).get(key) for key in COST_COLUMNS},
                })
    return out


def to_csv(comp: Comparison) -> str:
    rows = records(comp)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: "" if v is None else v for k, v in r.items()})
    return buf.getvalue()


def to_json(comp: Comparison) -> str:
    doc = {
        "task": comp.task, "split": comp.split, "measure": comp.measure, "ks": comp.ks, "baseline": comp.baseline,
        "systems": comp.systems, "run_ids": comp.run_ids, "n_queries": comp.n_queries,
        "bootstrap": {"n_resamples": comp.n_resamples, "seed": comp.seed, "alpha": ALPHA,
                      "ci_method": comp.ci_method if comp.show_ci else None},
        "low_sim_threshold": _num(comp.low_sim_threshold) if comp.low_sim_threshold is not None else None,
        "low_sim_rule": comp.low_sim_rule, "task_scale": comp.task_scale,
        "diversity_source": comp.diversity_source, "bin_by": comp.bin_by if comp.bins else None,
        "subsets": {s.name: {"label": s.label, "n_queries": s.n} for s in comp.subsets + comp.bins},
        "notes": comp.notes, "costs": comp.costs, "rows": records(comp),
    }
    return json.dumps(doc, indent=1) + "\n"


def render(comp: Comparison, fmt: str) -> str | list[Table]:
    """The comparison in one of FORMATS: a list of rich tables for "rich", text otherwise."""
    if fmt == "rich":
        return to_rich(comp)
    if fmt == "markdown":
        return to_markdown(comp)
    if fmt == "latex":
        return to_latex(comp)
    if fmt == "csv":
        return to_csv(comp)
    if fmt == "json":
        return to_json(comp)
    raise BenchError(f"unknown format {fmt!r}; one of {', '.join(FORMATS)}")


def _num(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)
