"""`bench report`: one static, self-contained HTML page of the stored runs of one or more tasks.

Per task: the comparison tables of MRECALL and Recall at every cutoff (whole set and low-similarity subset, Δ,
significance, 95% CIs, searches and LLM calls per query), sortable by any column; Figure 1 (per diversity bin) and
Figure 6 (gold similarity) — Figure 5 too when a run records output diversity — as inline SVG from
bench/results/plots.py; per system its stages and parameters, model identity, package versions and the `bench run`
command that reproduces it; the task's data audit and what the run records about its data and its fidelity.

The numbers come from `build_comparison` (bench/results/report.py) with the defaults of `bench compare --ci` and are
printed by the same formatting, so the page shows what `bench compare --ci --measure M` prints. The page is rendered
by jinja2 from `templates/report.html.j2`, its CSS and JavaScript inline: it needs no server and loads nothing.
"""

from __future__ import annotations

import io
import json
import math
import shlex
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.errors import BenchError
from bench.results.record import RunResult
from bench.results.report import (
    COST_COLUMNS,
    WHOLE,
    Comparison,
    available_ks,
    build_comparison,
    caption,
    cost_grid,
    grid,
)
from bench.storage.versions import package_versions

MEASURES = ("MRECALL", "Recall")
STANDARD_MEASURES = {m.lower() for m in MEASURES}  # recorded by every run (bench/metrics default_metrics)


# ------------------------------------------------------------------------------------------------------------ tables
@dataclass
class Cell:
    """One table cell: its text, what it sorts by, and what it is."""

    text: str  # as `bench compare` prints it
    sort: float | str | None  # what the column sorts by (None: missing, sorted last)
    key: str = ""  # field|metric|subset, for tests and scripts reading the page
    title: str = ""
    tone: str = ""  # "up" / "down": a significant difference above / below the baseline


@dataclass
class Column:
    """A sortable column heading."""

    label: str
    numeric: bool
    title: str = ""


@dataclass
class Group:
    """A heading over several columns (a metric and subset, or the cost)."""

    label: str
    span: int
    title: str = ""


@dataclass
class Table:
    """One measure's comparison, as the page shows it."""

    measure: str
    groups: list[Group]
    columns: list[Column]
    rows: list[tuple[str, bool, list[Cell]]]  # system, is baseline, cells (the first: the system)
    caption: list[str]


def _num(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def comparison_table(comp: Comparison) -> Table:
    """The `bench compare --ci` table as page cells: each text as the command prints it, each sort key the number."""
    header, text_rows = grid(comp, "main")
    _, cost_rows = cost_grid(comp)
    groups = [Group("", 1)]
    columns = [Column("system", False, "the canonical system name: a valid --retriever value")]
    for metric in comp.metrics:
        for subset in comp.subsets:
            label = f"{metric} · {'whole set' if subset.name == WHOLE else subset.label}"
            groups.append(Group(label, 3, f"{subset.n} queries"))
            columns += [Column("value ×100", True, f"mean {metric} × 100; * p < 0.05 against the baseline"),
                        Column("Δ", True, "relative gain (B − A)/A against the baseline"),
                        Column("95% CI", True, "95% CI of the difference B − A in points (sorts by its low end)")]
    groups.append(Group("query-side cost", len(COST_COLUMNS), "mean per test query"))
    columns += [Column(label, True) for label in COST_COLUMNS.values()]
    rows = []
    for system, texts, costs in zip(comp.systems, text_rows, cost_rows, strict=True):
        cells = [Cell(system, system, "system")]
        i = 1
        for metric in comp.metrics:
            for subset in comp.subsets:
                c = comp.cell(system, metric, subset.name)
                t = c.test
                where = f"{metric}|{subset.name}"
                p = f"p = {t.p_value:.4f} (paired bootstrap)" if t is not None else "baseline"
                tone = "" if t is None or not t.significant else ("up" if t.diff > 0 else "down")
                cells.append(Cell(texts[i], _num(c.value), f"value|{where}", p, tone))
                cells.append(Cell(texts[i + 1], _num(c.rel_gain) if t else None, f"rel_gain|{where}", "", tone))
                ci = _num(t.ci_low) if t else None
                cells.append(Cell(texts[i + 2], ci, f"ci|{where}",
                                  f"difference {100 * t.diff:+.2f} points" if t is not None else ""))
                i += 3
        cost = comp.costs.get(system, {})
        for key, text in zip(COST_COLUMNS, costs[1:], strict=True):
            cells.append(Cell(text, _num(cost.get(key)), f"cost|{key}"))
        rows.append((system, system == comp.baseline, cells))
    assert len(header) == len(columns) - len(COST_COLUMNS)  # one printed column per page column
    return Table(comp.measure, groups, columns, rows, caption(comp))


# ----------------------------------------------------------------------------------------------------------- figures
def svg_of(fig: Any, salt: str) -> str:
    """A matplotlib figure as an inline <svg> element: text as text (small, searchable), ids salted per figure so
    several on one page never share one, no timestamp."""
    import matplotlib
    import matplotlib.pyplot as plt

    buf = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": salt}):
        fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(fig)
    text = buf.getvalue()
    return text[text.index("<svg"):]


@dataclass
class Figure:
    """A figure as inline SVG, or the note saying why the runs cannot give it."""

    name: str
    title: str
    svg: str | None
    note: str = ""


def figures(task: str, runs: Mapping[str, RunResult], comp: Comparison, by: str) -> list[Figure]:
    """Figure 1 (bins), Figure 6 (gold similarity), and Figure 5 when a run records output diversity; a figure that
    the runs cannot give is a note saying why."""
    from bench.results import plots

    out: list[Figure] = []
    title1 = f"Figure 1 — {comp.measure}@k per quartile of target diversity"
    if comp.diversity_source is None:
        out.append(Figure("bins", title1, None, "; ".join(comp.notes) or "no run records target diversity"))
    else:
        fig = plots.figure1(runs, comp.ks, comp.measure, by, False, comp.baseline)
        out.append(Figure("bins", title1, svg_of(fig, f"{task}-bins")))
    title6 = "Figure 6 — gold pairs within a query vs from two random queries"
    with_gold = [r for r in runs.values() if plots.gold_similarity_of(r)]
    if with_gold:
        out.append(Figure("gold", title6, svg_of(plots.figure6({task: with_gold[-1]}), f"{task}-gold")))
    else:
        out.append(Figure("gold", title6, None, "no run records the gold-pair similarity (runs of lexical systems "
                                                "have no document embeddings)"))
    if any(plots.output_diversity(r) is not None for r in runs.values()):
        out.append(Figure("output", "Figure 5 — output vs target diversity of multi-vector retrievers",
                          svg_of(plots.figure5(runs), f"{task}-output")))
    return out


# ----------------------------------------------------------------------------------------------------------- systems
def _arg(value: Any) -> str:
    """A task parameter value as `-t key=value` reads it back."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "none"
    if isinstance(value, list | tuple):
        return ",".join(_arg(v) for v in value)
    return str(value)


def _changed_task_params(rec: RunResult) -> dict[str, Any]:
    """The task parameters of a run that differ from the task's defaults (as stored: tuples are JSON lists)."""
    from bench.registry import TASKS

    defaults = TASKS.get(rec.task)[0].param_defaults()
    return {k: v for k, v in rec.task_params.items()
            if k not in defaults or (list(defaults[k]) if isinstance(defaults[k], tuple) else defaults[k]) != v}


def run_command(rec: RunResult) -> str | None:
    """The `bench run` command that reproduces the run (same config hash); None for an in-process encoder object."""
    from bench.data.task import build_task

    if rec.retriever_info.get("in_process"):
        return None
    parts = ["bench", "run", "--task", rec.task, "--retriever", rec.system]
    for key, value in _changed_task_params(rec).items():
        parts += ["-t", f"{key}={_arg(value)}"]
    if list(rec.ks) != list(build_task(rec.task, rec.task_params).default_ks):
        parts += ["--k", ",".join(str(k) for k in rec.ks)]
    extra = sorted(m for m in rec.per_query if m.split("@")[0].lower() not in STANDARD_MEASURES)
    for metric in extra:
        parts += ["--metric", metric]
    if rec.seed:
        parts += ["--seed", str(rec.seed)]
    if rec.split != "test":
        parts += ["--split", rec.split]
    index = rec.extra.get("index") or {}
    if index and not index.get("exact", True):
        parts += ["--index", str(index.get("kind"))]
        params = index.get("params") or {}
        if "nprobe" in params:
            parts += ["--nprobe", str(params["nprobe"])]
        if "efSearch" in params:
            parts += ["--ef-search", str(params["efSearch"])]
        if index.get("rescore"):
            parts += ["--rescore", str(index["rescore"])]
    if index.get("fp16"):
        parts.append("--fp16-index")
    return shlex.join(parts)


_MODEL_KEYS = ("model", "revision", "sha256", "checkpoint", "backbone", "preset", "identity", "m_pred", "base_hash")


def _show(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)


@dataclass
class SystemInfo:
    """What the page says about one system's run."""

    name: str
    baseline: bool
    run_id: str
    created: str
    path: str
    command: str | None
    stages: list[dict[str, Any]]
    model: list[tuple[str, str]]
    versions: list[tuple[str, str]]
    timings: list[tuple[str, str]]
    recorded: str  # every retriever_info field, JSON


def system_info(label: str, rec: RunResult, path: Path, baseline: str) -> SystemInfo:
    model = [(k, _show(v)) for k, v in rec.retriever_info.items()
             if any(word in k for word in _MODEL_KEYS) and v not in (None, "", {})]
    stages = [{"kind": s.get("kind"), "name": s.get("name"),
               "params": [(k, _show(v)) for k, v in (s.get("params") or {}).items()]} for s in rec.stages]
    return SystemInfo(label, label == baseline, rec.run_id, rec.created, str(path), run_command(rec), stages, model,
                      [(k, str(v)) for k, v in rec.versions.items()],
                      [(k, f"{v:.1f} s") for k, v in rec.timings.items()],
                      json.dumps(rec.retriever_info, indent=1, ensure_ascii=False, default=str))


# -------------------------------------------------------------------------------------------------------- task data
@dataclass
class Audit:
    """The leak-audit lines of a task (`ran`: whether the task records an audit)."""

    ran: bool
    lines: list[str] = field(default_factory=list)


def audit_of(rec: RunResult) -> Audit:
    audit = rec.task_info.get("audit")
    if not audit or not audit.get("ran"):
        return Audit(False, ["the task records no leak audit (it runs on the real multi-answer tasks, AmbigQA and "
                             "QAMPARI, which have train questions that could leak into test)"])
    lines = [f"thresholds: question Jaccard ≥ {audit.get('question_threshold')}, gold-set Jaccard ≥ "
             f"{audit.get('gold_threshold')}",
             f"test questions ≈ a train question: {len(audit.get('duplicate_questions') or [])}",
             f"test gold sets ≈ a train gold set: {len(audit.get('duplicate_gold_sets') or [])}"]
    for split, n in (audit.get("repeated_gold") or {}).items():
        sharing = (audit.get("questions_sharing_gold") or {}).get(split, 0)
        lines.append(f"{split}: {n} (question, passage) pairs where one passage is gold for two or more of the "
                     f"question's answers; {sharing} questions have such a passage")
    leaked = audit.get("leaked_test_questions") or []
    dropped = audit.get("dropped") or []
    lines.append(f"leaked test questions: {len(leaked)}" + (f" ({', '.join(leaked[:20])}"
                                                             + (", …" if len(leaked) > 20 else "") + ")"
                                                             if leaked else ""))
    lines.append(f"dropped from this run's test split: {len(dropped)}"
                 + ("" if dropped or not leaked else " (drop them with -t drop_leaked=true)"))
    return Audit(True, lines)


def fidelity_of(rec: RunResult) -> list[str]:
    """What differs from the paper, as far as the run records it."""
    info = rec.task_info
    lines = []
    if info.get("corpus_label"):
        lines.append(f"corpus: {info['corpus_label']}")
    kind = info.get("kind", "?")
    lines.append(f"task kind {kind}, {info.get('modality', '?')} queries; {rec.corpus_size:,} documents in the corpus")
    changed = _changed_task_params(rec)
    lines.append("task parameters: " + (", ".join(f"{k}={_arg(v)}" for k, v in changed.items()) if changed
                                        else "the task's defaults"))
    if info.get("split"):
        lines.append(f"splits: {_show(info['split'])}")
    lines.append("every difference between this harness and the paper, with the option that gives the paper's "
                 "behaviour, is listed in docs/fidelity.md of the multitarget-bench sources")
    return lines


def data_lines_of(rec: RunResult) -> list[tuple[str, str]]:
    """The task info's short facts (generator settings, corpus, counts per filtering step, split sizes) as
    label → text."""
    info = rec.task_info
    out: list[tuple[str, str]] = []
    for key, value in info.items():
        if key in ("audit", "kind", "modality", "corpus_label", "split"):
            continue  # shown in the audit and fidelity lists
        if isinstance(value, str | int | float | bool) or key in ("split_sizes", "steps"):
            out.append((key, _show(value)))
    out.append(("queries in the split", f"{len(rec.query_ids):,} ({rec.split})"))
    out += [(f"data hash ({k})", str(v)[:16]) for k, v in rec.data_hash.items()]
    return out


# -------------------------------------------------------------------------------------------------------------- page
@dataclass
class Section:
    """Everything the page shows about one task."""

    task: str
    anchor: str
    split: str
    n_queries: int
    tables: list[Table]
    figures: list[Figure]
    systems: list[SystemInfo]
    audit: Audit
    fidelity: list[str]
    data: list[tuple[str, str]]


def section(task: str, found: Mapping[str, tuple[RunResult, Path]], *, baseline: str | None = None,
            resamples: int = 10_000, seed: int = 0, by: str = "cosine") -> Section:
    runs = {label: rec for label, (rec, _) in found.items()}
    comps = [build_comparison(runs, baseline=baseline, measure=m, n_resamples=resamples, seed=seed, show_ci=True,
                              bin_by=by) for m in MEASURES if available_ks(runs, m)]
    if not comps:
        raise BenchError(f"the runs of {task} share no {' or '.join(MEASURES)}@k metric")
    first = comps[0]
    ref = runs[first.baseline]
    return Section(
        task=task, anchor="task-" + "".join(c if c.isalnum() else "-" for c in task), split=first.split,
        n_queries=first.n_queries, tables=[comparison_table(c) for c in comps],
        figures=figures(task, runs, first, by),
        systems=[system_info(label, rec, path, first.baseline) for label, (rec, path) in found.items()],
        audit=audit_of(ref), fidelity=fidelity_of(ref), data=data_lines_of(ref))


def render(sections: Sequence[Section], title: str = "multitarget-bench report") -> str:
    import jinja2

    env = jinja2.Environment(loader=jinja2.PackageLoader("bench.results", "templates"),
                             autoescape=True, trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined)
    template = env.get_template("report.html.j2")
    return template.render(title=title, sections=sections, versions=package_versions(),
                           generated=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()))


def build_report(tasks: Sequence[str], results_dir: Path, *, baseline: str | None = None, resamples: int = 10_000,
                 seed: int = 0, by: str = "cosine") -> str:
    """The page of the newest run of each system on each task (as `bench compare` picks them)."""
    from bench.results.runs import collect_runs

    if not tasks:
        raise BenchError("give one or more tasks: --task T[,T2…]")
    sections = []
    for task in tasks:
        found = collect_runs(task, results_dir, None)
        sections.append(section(task, found, baseline=baseline if baseline in found else None, resamples=resamples,
                                seed=seed, by=by))
    return render(sections, f"multitarget-bench report: {', '.join(tasks)}")
