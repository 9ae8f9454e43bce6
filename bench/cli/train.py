"""`bench train` (train a query encoder, keep its checkpoint) and `bench repro synthetic` (the headline, end to end)."""

from __future__ import annotations

import os
import platform
import shlex
import sys
import time
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from bench.cli import options as opt
from bench.cli.app import app
from bench.cli.output import print_whole
from bench.errors import BenchError
from bench.storage.atomic import atomic_open
from bench.storage.versions import package_versions

out = Console()

SYNTHETIC_SETTINGS = tuple(f"synthetic-{kind}-{setting}" for kind in ("linear", "mlp")
                           for setting in ("single", "multi", "ood"))
REPRO_RETRIEVERS = ("amer", "single-query")
# The claim the reproduction checks: AMER ≥ 0.95 and Single-Query ≤ 0.20 MRECALL@10 in every setting.
AMER_MIN, SINGLE_MAX = 0.95, 0.20

repro_app = typer.Typer(help="Reproduce the paper's headline results and write them as Markdown under results/.",
                        no_args_is_help=True)
app.add_typer(repro_app, name="repro")


@app.command("train")
def train_cmd(
    task: opt.Task,
    retriever: str = typer.Option(..., "--retriever", help="a trained retriever: amer or single-query"),
    task_param: opt.TaskParams = None,
    retriever_param: opt.RetrieverParams = None,
    seed: opt.Seed = 0,
    retrain: opt.Retrain = False,
    device: opt.Device = "auto",
    backbone: str = typer.Option(None, "--backbone", help="a causal LM (local folder or a hub id in the local "
                                 "cache) as query encoder; text tasks default to SmolLM2-135M-Instruct offline"),
) -> None:
    """Train a query encoder on a task's train split and store its checkpoint (reused by `bench run`).

    Resumable: a killed run continues from its last training state (-r checkpoint_every=N steps). Under
    `torchrun --nproc-per-node N -m bench train ...` it trains with DDP, N processes, one checkpoint."""
    from bench.data.task import build_task
    from bench.evaluate import recipe
    from bench.metrics import default_metrics
    from bench.params import items_of
    from bench.systems.build import build_systems
    from bench.systems.context import RunContext
    from bench.systems.retriever import Trainable, VectorRetriever
    from bench.systems.session import Session

    pairs = items_of(retriever_param or [], "-r")
    if backbone:
        if any(key.rpartition(".")[2] == "backbone" for key, _ in pairs):
            raise BenchError("give the backbone once: --backbone or -r backbone=, not both")
        pairs.append(("retriever.backbone", backbone))
    systems = build_systems(retriever, pairs)
    system = systems[0]
    retr = system.retriever
    staged = system.expander is not None or system.fuser is not None or system.rerankers
    if len(systems) != 1 or staged or not isinstance(retr, Trainable) or not isinstance(retr, VectorRetriever):
        raise BenchError(f"retriever {retriever!r} is not trained; `bench train` takes one of amer or single-query")
    task_obj = build_task(task, task_param or [])
    session = Session(device=device)
    data = session.task_data(task_obj)
    run_recipe = recipe(task_obj, system, default_metrics(task_obj.default_ks), session, seed, "test")
    emb, index, _ = session.corpus_index(data, retr, run_recipe)
    ctx = RunContext(task=data, corpus_embeddings=emb, index=index, seed=seed, device=device, retrain=retrain,
                     console=session.console, recipe=run_recipe)
    t0 = time.perf_counter()
    retr.prepare(ctx)
    if int(os.environ.get("RANK", "0")) != 0:  # under torchrun, rank 0 reports
        return
    info = retr.info()
    table = Table(title=escape(f"{system.name} on {task} (seed {seed})"), show_header=False)
    table.add_column("field")
    table.add_column("value", overflow="fold")
    table.add_row("checkpoint", str(info["checkpoint"]))
    table.add_row("trained now", "yes" if info["trained_now"] else "no (matching checkpoint found; --retrain forces)")
    table.add_row("backbone", f"{info['backbone']} ({info['finetune'] or 'full'})")
    table.add_row("parameters (trainable)", f"{info['n_parameters']:,} ({info['n_trainable'] or 0:,})")
    table.add_row("m_pred", f"{info['m_pred']} ({info['m_pred_source']})")
    if info.get("resumed_from_step"):
        table.add_row("resumed from step", str(info["resumed_from_step"]))
    if (info.get("processes") or 1) > 1:
        table.add_row("processes (DDP)", str(info["processes"]))
    table.add_row("best step", str(info["best_step"]))
    table.add_row("best validation loss", f"{info['best_val_loss']:.4f}" if info["best_val_loss"] is not None else "-")
    table.add_row("training time (s)", str(info["train_seconds"]))
    table.add_row("wall time (s)", f"{time.perf_counter() - t0:.1f}")
    print_whole(out, table)  # a checkpoint path is never wrapped (bench/cli/output.py)


def _load() -> str:
    try:
        return " / ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


@repro_app.command("synthetic")
def repro_synthetic(
    results_dir: opt.ResultsDir = Path("results"),
    output: opt.Output = None,
    settings: str = typer.Option(",".join(SYNTHETIC_SETTINGS), help="comma-separated synthetic tasks to run"),
    task_param: opt.TaskParams = None,
    retriever_param: opt.RetrieverParams = None,
    seed: opt.Seed = 0,
    reuse: bool = typer.Option(False, "--reuse-checkpoints", help="evaluate matching checkpoints instead of training"),
    device: opt.Device = "auto",
    jobs: int = typer.Option(0, "--jobs", help="settings run at once, each in its own process with its own "
                             "training thread (0 = one per CPU core, at most one per setting)"),
) -> None:
    """Train and evaluate AMER and Single-Query on the synthetic settings; write a Markdown table of MRECALL@10/@100
    with wall times (train + evaluate, per retriever and setting) to --output (default:
    <results-dir>/repro-synthetic.md). Settings run side by side in --jobs processes: a training step is one
    thread's work, so the cores train different settings (the same weights as one at a time)."""
    from bench.systems.build import build_systems

    if jobs < 0:
        raise BenchError(f"--jobs must be ≥ 0, got {jobs}")
    names = [s.strip() for s in settings.split(",") if s.strip()]
    unknown = [s for s in names if s not in SYNTHETIC_SETTINGS]
    if unknown or not names:
        raise BenchError(f"unknown synthetic setting(s) {', '.join(unknown) or '(none)'}; "
                         f"known: {', '.join(SYNTHETIC_SETTINGS)}")
    out_file = output or results_dir / "repro-synthetic.md"
    build_systems(",".join(REPRO_RETRIEVERS), retriever_param or [])  # bad -r pairs fail here, before any work
    command = "bench repro synthetic " + shlex.join(sys.argv[3:]) if sys.argv[1:3] == ["repro", "synthetic"] \
        else "bench repro synthetic"
    load_start = _load()
    started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    t_all = time.perf_counter()
    args = (list(task_param or []), list(retriever_param or []), seed, reuse, device, results_dir)
    workers = min(len(names), jobs or os.cpu_count() or 1)
    if workers <= 1:
        rows = [_repro_setting(name, *args) for name in names]
    else:
        from bench.cli.run import worker_pool

        with worker_pool(workers) as pool:
            futures = [pool.submit(_repro_setting, name, *args) for name in names]
            try:
                rows = [f.result() for f in futures]
            except BaseException:
                pool.shutdown(cancel_futures=True)
                raise
    total = time.perf_counter() - t_all
    text = _markdown(rows, command=command, started=started, total=total, load_start=load_start, load_end=_load(),
                     task_params=task_param or [], retriever_params=retriever_param or [], seed=seed, reuse=reuse,
                     jobs=workers)
    with atomic_open(out_file) as fh:
        fh.write(text)
    scales = sorted({str(row["scale"]) for row in rows if row.get("scale")})
    table = Table(title="synthetic headline: MRECALL (test split)" + "".join(f"; {x}" for x in scales))
    for col in ("setting", "AMER @10", "AMER @100", "Single @10", "Single @100", "AMER s", "Single s"):
        table.add_column(col, justify="left" if col == "setting" else "right", no_wrap=col == "setting")
    for row in rows:
        a, s = row["amer"], row["single-query"]
        table.add_row(str(row["task"]), f"{a['MRECALL@10']:.3f}", f"{a['MRECALL@100']:.3f}",  # type: ignore[index]
                      f"{s['MRECALL@10']:.3f}", f"{s['MRECALL@100']:.3f}",  # type: ignore[index]
                      f"{a['wall']:.0f}", f"{s['wall']:.0f}")  # type: ignore[index]
    print_whole(out, table)
    out.print(f"[dim]table written to {escape(str(out_file))}[/]", highlight=False, soft_wrap=True)


def _repro_setting(name: str, task_param: list[str], retriever_param: list[str], seed: int, reuse: bool,
                   device: str, results_dir: Path) -> dict[str, object]:
    """One setting of `bench repro synthetic`: AMER then Single-Query, trained (or loaded) and evaluated; its row."""
    from bench.data.task import build_task
    from bench.evaluate import check, evaluate
    from bench.metrics import default_metrics
    from bench.systems.build import build_systems
    from bench.systems.session import Session

    systems = build_systems(",".join(REPRO_RETRIEVERS), retriever_param)
    metrics = default_metrics((10, 100))
    session = Session(device=device)
    task_obj = build_task(name, task_param)
    check(task_obj, systems, metrics, session, results_dir)
    row: dict[str, object] = {"task": name}
    for retr, system in zip(REPRO_RETRIEVERS, systems, strict=True):
        t0 = time.perf_counter()
        result, path = evaluate(task_obj, system, metrics, session, seed=seed, retrain=not reuse,
                                results_dir=results_dir)
        row[retr] = {
            "MRECALL@10": result.summary["MRECALL@10"], "MRECALL@100": result.summary["MRECALL@100"],
            "wall": time.perf_counter() - t0, "prepare": result.timings.get("prepare", float("nan")),
            "trained": bool(result.retriever_info.get("trained_now")), "run": str(path),
            "best_step": result.retriever_info.get("best_step"), "load": _load().split(" / ")[0],
            "threads": result.retriever_params.get("threads"),
        }
        row["scale"] = result.task_info.get("scale")  # the task's sizes in words (synthetic tasks record them)
        out.print(f"{escape(name)} · {escape(retr)}: MRECALL@10 {result.summary['MRECALL@10']:.3f}  "
                  f"MRECALL@100 {result.summary['MRECALL@100']:.3f}  ({row[retr]['wall']:.0f} s)",  # type: ignore[index]
                  highlight=False)
    return row


def _markdown(rows: list[dict], *, command: str, started: str, total: float, load_start: str, load_end: str,
              task_params: list[str], retriever_params: list[str], seed: int, reuse: bool, jobs: int = 1) -> str:
    import torch

    lines = [
        "# Synthetic headline: AMER vs Single-Query",
        "",
        "MRECALL@k on the test split (README, 'What it measures'), m = 5 targets per query. Wall time covers one",
        "`bench run` of the retriever on the setting: loading the task, "
        + ("loading a stored checkpoint" if reuse else "training") + ", encoding, search and metrics.",
        "The CPU may be shared: the last column is the 1-minute load average when the AMER run ended (above the",
        "core count means other jobs were competing for the CPU).",
        "",
        "| setting | AMER MRECALL@10 | AMER MRECALL@100 | Single-Query MRECALL@10 | Single-Query MRECALL@100 "
        "| AMER wall (s) | Single-Query wall (s) | AMER best step | load after AMER |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    ok = True
    for row in rows:
        a, s = row["amer"], row["single-query"]
        ok &= a["MRECALL@10"] >= AMER_MIN and s["MRECALL@10"] <= SINGLE_MAX
        lines.append(f"| {row['task']} | {a['MRECALL@10']:.3f} | {a['MRECALL@100']:.3f} | {s['MRECALL@10']:.3f} "
                     f"| {s['MRECALL@100']:.3f} | {a['wall']:.0f} | {s['wall']:.0f} | {a['best_step']} | {a['load']} |")
    versions = package_versions()
    lines += [
        "",
        f"Claim (AMER MRECALL@10 ≥ {AMER_MIN:.2f} and Single-Query ≤ {SINGLE_MAX:.2f} in every setting): "
        + ("**holds**" if ok else "**does not hold**") + ".",
        "",
        f"- command: `{command}`",
        *(f"- sizes: {x}" for x in sorted({str(row["scale"]) for row in rows if row.get("scale")})),
        f"- task params: {', '.join(task_params) or 'defaults'}; retriever params: "
        f"{', '.join(retriever_params) or 'defaults'}; seed {seed}",
        f"- started {started}; total wall time {total / 60:.1f} min, "
        + (f"{jobs} settings at a time (one process each)" if jobs > 1 else "one setting at a time"),
        f"- machine: {platform.machine()}, {os.cpu_count()} CPUs, torch threads while training and encoding "
        f"{rows[0]['amer']['threads'] or torch.get_num_threads()} (retriever param `threads`), "
        f"CUDA {'yes' if torch.cuda.is_available() else 'no'}; load average (1/5/15 min) at start {load_start}, "
        f"at end {load_end}",
        f"- commit {versions.get('git_commit', 'n/a')}; torch {versions.get('torch', torch.__version__)}, "
        f"transformers {versions.get('transformers', '?')}, faiss {versions.get('faiss-cpu', '?')}",
        "- run files: " + ", ".join(f"`{row[r]['run']}`" for row in rows for r in REPRO_RETRIEVERS),
        "",
    ]
    return "\n".join(lines)
