"""`bench list` and `bench run`."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from bench.cli import app
from bench.metrics import parse_ks, parse_metric
from bench.pipeline import Session, build_task, run
from bench.registry import RETRIEVERS, TASKS

out = Console()


class Kind(StrEnum):
    tasks = "tasks"
    retrievers = "retrievers"


@app.command("list")
def list_plugins(what: Kind = typer.Argument(..., help="tasks or retrievers")) -> None:
    """List the registered tasks or retrievers, with their parameters and defaults."""
    registry = TASKS if what is Kind.tasks else RETRIEVERS
    table = Table(title=f"registered {what.value}", show_lines=False)
    for col in ("name", "kind", "description", "parameters (defaults)"):
        table.add_column(col, overflow="fold", no_wrap=col == "name")
    for name, meta in registry.all().items():
        params = ", ".join(f"{k}={v}" for k, v in meta.param_defaults().items())
        table.add_row(name, meta.kind, meta.description, params)
    out.print(table)


@app.command("run")
def run_cmd(
    task: str = typer.Option(..., "--task", help="a registered task (see `bench list tasks`)"),
    retriever: str = typer.Option(..., "--retriever", help="retriever name(s), comma-separated; they share one index"),
    k: str = typer.Option(None, "--k", help="cutoffs, e.g. 10,100 (default: the task's own)"),
    metric: list[str] = typer.Option(None, "--metric", help="extra metric names, e.g. MRECALL@2 (repeatable)"),
    task_param: list[str] = typer.Option(None, "--task-param", "-t", help="task parameter key=value (repeatable)"),
    retriever_param: list[str] = typer.Option(
        None, "--retriever-param", "-r", help="retriever parameter key=value (repeatable)"
    ),
    seed: int = typer.Option(0, help="seed for everything the retriever samples"),
    split: str = typer.Option("test", help="the split to evaluate"),
    retrain: bool = typer.Option(False, "--retrain", help="train again even when a matching checkpoint exists"),
    trust_remote_code: bool = typer.Option(
        False, "--trust-remote-code", help="let models run their repository's code (stella, inf-retriever, nv-embed)"
    ),
    device: str = typer.Option("auto", help="auto (CUDA when present), cuda or cpu"),
    results_dir: Path = typer.Option(Path("results"), help="where run files are written"),
) -> None:
    """Evaluate retriever(s) on a task; writes results/<task>/<retriever>/<run-id>.json and .trec."""
    task_obj = build_task(task, task_param or [])
    ks = parse_ks(k) if k else task_obj.default_ks
    metrics = None
    if metric:
        from bench.metrics import default_metrics

        metrics = sorted(set(default_metrics(ks)) | {parse_metric(m) for m in metric})
    session = Session(device=device)
    rows = []
    for name in [r.strip() for r in retriever.split(",") if r.strip()]:
        r_params = list(retriever_param or [])
        if trust_remote_code and _has_param(name, "trust_remote_code"):
            r_params.append("trust_remote_code=true")
        result, path = run(task, name, ks, task_param or [], r_params, seed=seed, split=split,
                           retrain=retrain, results_dir=results_dir, session=session, metrics=metrics)
        rows.append((result, path))
    names = list(rows[0][0].summary)
    table = Table(title=f"{task} — {split} split, {len(rows[0][0].query_ids)} queries")
    table.add_column("retriever")
    for n in names:
        table.add_column(n, justify="right")
    table.add_column("time (s)", justify="right")
    for result, _ in rows:
        cells = [f"{result.summary[n]:.4f}" for n in names]
        table.add_row(result.retriever, *cells, f"{result.timings['total']:.1f}")
    out.print(table)
    for result, path in rows:
        out.print(f"[dim]{result.retriever}: {path}[/]", highlight=False)


def _has_param(retriever: str, param: str) -> bool:
    meta, _ = RETRIEVERS.get(retriever)
    return param in meta.param_defaults()
