"""`bench compare`, `bench plot`, `bench check` and `bench export`: statistics, figures, the regression gate and
TREC files over stored runs."""

from __future__ import annotations

import io
import shutil
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.markup import escape

from bench.cli import options as opt
from bench.cli.app import app
from bench.errors import BenchError
from bench.storage.atomic import atomic_open, atomic_path

if TYPE_CHECKING:
    from bench.results.record import RunResult

out = Console()
err = Console(stderr=True)


class Format(StrEnum):
    rich = "rich"
    markdown = "markdown"
    latex = "latex"
    csv = "csv"
    json = "json"


class Distance(StrEnum):
    cosine = "cosine"
    euclidean = "euclidean"


class CIMethod(StrEnum):
    bca = "bca"
    percentile = "percentile"


class LowSimRule(StrEnum):
    paper = "paper"
    reference = "reference"


def _wide(console: Console) -> Console:
    """Comparison tables are wide: outside a terminal (CI logs, pipes) print them 240 columns wide, not 80."""
    if not console.is_terminal:
        console.width = max(console.width, 240)
    return console



def _write_or_print(text: str, output: Path | None) -> None:
    if output is None:
        print(text, end="" if text.endswith("\n") else "\n")
        return
    with atomic_open(output) as fh:
        fh.write(text)
    err.print(f"[dim]wrote {escape(str(output))}[/]", highlight=False, soft_wrap=True)


@app.command("compare")
def compare_cmd(
    task: opt.Task = None,  # type: ignore[assignment]
    results_dir: opt.ResultsDir = Path("results"),
    run_file: opt.Runs = None,
    baseline: opt.Baseline = None,
    k: opt.Cutoffs = None,
    measure: opt.Measure = "MRECALL",
    ci: bool = typer.Option(False, "--ci", help="add the 95% confidence interval of each difference"),
    ci_method: CIMethod = typer.Option(CIMethod.bca, "--ci-method", help="bca (scipy's default) or percentile"),
    bins: bool = typer.Option(False, "--bins", help="add the per-diversity-quartile table"),
    by: Distance = typer.Option(Distance.cosine, "--by", help="diversity distance for the bins"),
    low_sim: LowSimRule = typer.Option(
        LowSimRule.paper, "--low-sim", help="the low-similarity subset's rule: paper (cosine similarity ≤ its 33rd "
        "percentile) or reference (the reference code's: Euclidean distance > its 3/4 quantile)"),
    fmt: Format = typer.Option(Format.rich, "--format", help="rich, markdown, latex, csv or json"),
    output: opt.Output = None,
    resamples: int = typer.Option(10_000, "--resamples", help="bootstrap resamples"),
    seed: opt.Seed = 0,
) -> None:
    """Compare systems on one task: MRECALL@k on the whole test set and the low-similarity subset, Δ vs a baseline,
    * where a paired bootstrap gives p < 0.05. Refuses runs of different queries, corpora or splits."""
    from bench.api import comparison  # the function the Python API's bench.compare returns
    from bench.metrics import parse_ks
    from bench.results.report import render, to_rich

    comp = comparison(task, results_dir, runs=run_file, baseline=baseline, ks=parse_ks(k) if k else None,
                      measure=measure, ci=ci, ci_method=ci_method.value, bins=bins, by=by.value, resamples=resamples,
                      seed=seed, low_sim=low_sim.value)
    if fmt is Format.rich:
        if output is None:
            console = _wide(out)
            for table in to_rich(comp):
                console.print(table)
            return
        console = Console(record=True, width=200, file=io.StringIO())
        for table in to_rich(comp):
            console.print(table)
        _write_or_print(console.export_text(), output)
        return
    text = render(comp, fmt.value)
    assert isinstance(text, str)
    _write_or_print(text, output)


@app.command("plot")
def plot_cmd(
    task: opt.Tasks,
    results_dir: opt.ResultsDir = Path("results"),
    run_file: opt.Runs = None,
    figure: str = typer.Option("all", "--figure", help="1, 5, 6, a comma list, or all"),
    k: opt.Cutoffs = None,
    measure: opt.Measure = "MRECALL",
    by: Distance = typer.Option(Distance.cosine, "--by", help="diversity distance for the bins"),
    by_answers: bool = typer.Option(False, "--by-answers", help="Figure 1: one row of panels per answer count"),
    baseline: opt.Baseline = None,
    out_dir: opt.OutDir = Path("plots"),
) -> None:
    """Figures as PNG + PDF: 1 = MRECALL@k per target-diversity quartile per system; 5 = output vs target
    diversity of multi-vector retrievers; 6 = within-query vs random-pair gold similarity."""
    from bench.metrics import measure_name, parse_ks
    from bench.results import plots
    from bench.results.report import available_ks
    from bench.results.runs import collect_runs

    wanted = {"1", "5", "6"} if figure.strip() == "all" else {f.strip() for f in figure.split(",") if f.strip()}
    if not wanted or wanted - {"1", "5", "6"}:
        raise BenchError(f"--figure takes 1, 5, 6 (comma-separated) or all, got {figure!r}")
    measure = measure_name(measure)
    tasks = [t.strip() for t in task.split(",") if t.strip()]
    if run_file and len(tasks) > 1:
        raise BenchError("--run takes the runs of one task")
    written: list[Path] = []
    per_task: dict[str, RunResult] = {}
    for t in tasks:
        runs = {label: rec for label, (rec, _) in collect_runs(t, results_dir, run_file).items()}
        safe = t.replace("/", "_")
        if "1" in wanted:
            ks = list(parse_ks(k)) if k else available_ks(runs, measure)
            base = baseline if baseline in runs else None
            if baseline and base is None:
                err.print(f"[yellow]{escape(t)}[/]: no {escape(repr(baseline))} run; bins use the default baseline",
                          highlight=False)
            fig = plots.figure1(runs, ks, measure, by.value, by_answers, base)
            suffix = "-by-answers" if by_answers else ""
            written += plots.save(fig, out_dir / f"fig1-{safe}-{measure.lower()}{suffix}")
        if "5" in wanted:
            if any(plots.output_diversity(r) is not None for r in runs.values()):
                written += plots.save(plots.figure5(runs), out_dir / f"fig5-{safe}-output-diversity")
            elif figure.strip() != "all":
                plots.figure5(runs)  # raises the explanation
            else:
                err.print(f"[yellow]Figure 5 skipped for {escape(t)}[/]: no run records output diversity "
                          "(AMER runs do)")
        with_gold = [r for r in runs.values() if plots.gold_similarity_of(r)]
        if with_gold:
            per_task[t] = with_gold[-1]
    if "6" in wanted:
        if not per_task:
            raise BenchError("Figure 6 needs runs that record target diversity; rerun the task(s)")
        name = "-".join(sorted(per_task)) if len(per_task) <= 3 else f"{len(per_task)}-tasks"
        written += plots.save(plots.figure6(per_task), out_dir / f"fig6-{name}-gold-similarity")
    for path in written:
        out.print(f"wrote {escape(str(path))}", highlight=False, soft_wrap=True)


@app.command("check")
def check_cmd(
    file: str = typer.Argument(None, help="expected-scores YAML, or a shipped name (default: synthetic-smoke)"),
    read: Path = typer.Option(None, "--read", help="read the newest matching runs under this folder; run nothing"),
    results_dir: opt.ResultsDir = None,  # type: ignore[assignment]
    one_sided: bool = typer.Option(False, "--one-sided", help="only drops fail; rises are reported but pass"),
    write_measured: Path = typer.Option(None, "--write-measured", help="also write the measured values as YAML"),
) -> None:
    """The regression gate: run (or read) the configurations an expected-scores file lists and exit 1, with a table
    of what moved and by how much, when any metric leaves its tolerance. The runs go to a temporary folder unless
    --results-dir keeps them."""
    from bench.results import check

    path = check.resolve_file(file)
    expectations = check.load_expectations(path)
    outcomes = check.measure(expectations, read_dir=read, results_dir=results_dir, one_sided=one_sided,
                             on_run=lambda e: err.print(f"[dim]running {escape(e.retriever)} on {escape(e.task)}[/]",
                                                         highlight=False))
    _wide(out).print(check.outcome_table(outcomes, f"bench check {path.name}"))
    if write_measured is not None:
        check.write_measured(outcomes, write_measured)
        err.print(f"[dim]wrote measured values to {escape(str(write_measured))}[/]", highlight=False, soft_wrap=True)
    failed = [o for o in outcomes if o.failed]
    if failed:
        err.print(f"[bold red]check failed[/]: {len(failed)} of {len(outcomes)} values left their tolerance")
        raise typer.Exit(1)


@app.command("export")
def export_cmd(
    out_dir: opt.OutDir,
    task: opt.Task = None,  # type: ignore[assignment]
    results_dir: opt.ResultsDir = Path("results"),
    run_file: opt.Runs = None,
) -> None:
    """TREC files for ranx / ir_measures / trec_eval, written to --out-dir: the newest run of each system on --task
    (or the --run files) as `<system>.trec`, and the task's qrels — `<task>.<split>.qrels`
    (every gold doc, relevance 1: document recall, equal to answer recall only with one gold doc per cluster) and
    `<task>.<split>.subtopic.qrels` (the answer cluster in the iteration column: ir_measures' StRecall@k through
    pyndeval equals our Recall@k)."""
    from bench.data.task import build_task
    from bench.results.record import system_folder, write_trec_cluster_qrels, write_trec_qrels
    from bench.results.runs import collect_runs

    runs = collect_runs(task, results_dir, run_file)
    first, _ = next(iter(runs.values()))
    for label, (rec, path) in runs.items():
        if (rec.task, rec.split, rec.data_hash) != (first.task, first.split, first.data_hash):
            raise BenchError(f"{path}: not the same task data as {first.run_id}; export one task's runs at a time")
        trec = path.with_suffix(".trec")
        if not trec.exists():
            raise BenchError(f"{trec}: the run's ranking file is missing")
        dest = out_dir / f"{system_folder(label)}.trec"  # `st:/a/model` must not become a path
        with atomic_path(dest) as tmp:
            shutil.copyfile(trec, tmp)
        out.print(f"wrote {escape(str(dest))}", highlight=False, soft_wrap=True)  # `[` is no markup
    data = build_task(first.task, first.task_params).load()
    if data.data_hash() != first.data_hash:
        raise BenchError(f"task {first.task} with the run's parameters no longer yields the data the run used "
                         "(data hash differs); cannot write matching qrels")
    split = data.split(first.split)
    if list(split.query_ids) != first.query_ids:
        raise BenchError(f"task {first.task}: query ids differ from run {first.run_id}")
    qrels = out_dir / f"{first.task}.{first.split}.qrels"
    write_trec_qrels(qrels, split.query_ids, split.targets, data.corpus.ids)
    out.print(f"wrote {escape(str(qrels))}", highlight=False, soft_wrap=True)
    subtopic = out_dir / f"{first.task}.{first.split}.subtopic.qrels"
    write_trec_cluster_qrels(subtopic, split.query_ids, split.targets, data.corpus.ids)
    out.print(f"wrote {escape(str(subtopic))}", highlight=False, soft_wrap=True)
