"""`bench report`: one static HTML page of the stored runs of one or more tasks (bench/results/page.py)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from bench.cli import options as opt
from bench.cli.app import app
from bench.cli.compare import Distance

out = Console()


@app.command("report")
def report_cmd(
    task: opt.Tasks,
    results_dir: opt.ResultsDir = Path("results"),
    output: opt.Page = Path("report.html"),
    baseline: opt.Baseline = None,
    by: Distance = typer.Option(Distance.cosine, "--by", help="diversity distance for the bins"),
    resamples: int = typer.Option(10_000, "--resamples", help="bootstrap resamples"),
    seed: opt.Seed = 0,
) -> None:
    """One self-contained HTML page (no server, nothing loaded from the network) of the newest run of each system on
    each task: MRECALL and Recall tables sortable by any column, the diversity-bin and gold-similarity figures, each
    system's stages, model, versions and the `bench run` command that reproduces it, the data audit."""
    from bench.results.page import build_report
    from bench.storage.atomic import atomic_open

    tasks = [t.strip() for t in task.split(",") if t.strip()]
    page = build_report(tasks, results_dir, baseline=baseline, resamples=resamples, seed=seed, by=by.value)
    with atomic_open(output) as fh:
        fh.write(page)
    size = output.stat().st_size
    out.print(f"wrote {output} ({size / 1024:,.0f} KiB, {len(tasks)} task(s)); open it in a browser: "
              f"{output.resolve().as_uri()}", highlight=False, soft_wrap=True)
