"""`bench list` and `bench run`."""

from __future__ import annotations

import os
from enum import StrEnum
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from bench.cli import app
from bench.errors import BenchError
from bench.metrics import parse_ks, parse_metric
from bench.pipeline import (
    Session,
    build_system,
    build_task,
    check_system,
    route_params,
    run,
    system_spec,
    unused_params,
)
from bench.preflight import preflight
from bench.registry import EXPANDERS, FUSERS, RERANKERS, RETRIEVERS, TASKS, PluginMeta
from bench.stages.system import format_system, split_systems

out = Console()


class Kind(StrEnum):
    tasks = "tasks"
    retrievers = "retrievers"
    fusers = "fusers"
    rerankers = "rerankers"
    expanders = "expanders"
    stages = "stages"


def _param_text(meta: PluginMeta) -> str:
    import dataclasses

    if meta.params is None:
        return ""
    aliases = {f.name: f.metadata.get("alias", f.name) for f in dataclasses.fields(meta.params)}
    return ", ".join(f"{aliases.get(k, k)}={v}" for k, v in meta.param_defaults().items())


def _plugin_table(title: str, items: dict[str, PluginMeta], how: str | None = None) -> Table:
    table = Table(title=title, show_lines=False)
    cols = ["name", "kind", "description", "parameters (defaults)"] + (["use as"] if how else [])
    for col in cols:
        table.add_column(col, overflow="fold", no_wrap=col == "name")
    for name, meta in items.items():
        aliases = meta.extra.get("aliases", ())
        shown = name + (f" ({', '.join(aliases)})" if aliases else "")
        row = [shown, meta.kind, meta.description, _param_text(meta)]
        if how:
            row.append(how.format(name=name))
        table.add_row(*(escape(c) for c in row))
    return table


def _stage_tables() -> list[Table]:
    return [
        _plugin_table("query expanders (before the retriever)", EXPANDERS.all(),
                      "<retriever>+{name}  or  --expand {name}"),
        _plugin_table("fusers (the m lists of a query → one)", FUSERS.all(), "<retriever>@{name}  or  --fusion {name}"),
        _plugin_table("re-rankers (after fusion)", RERANKERS.all(), "<retriever>+{name}  or  --rerank {name}"),
    ]


@app.command("list")
def list_plugins(what: Kind = typer.Argument(..., help="tasks, retrievers, fusers, rerankers, expanders or stages")
                 ) -> None:
    """List registered tasks, retrievers or pipeline stages, with their parameters and defaults.

    `bench list retrievers` also shows the stages a retriever composes with: a system is named like
    `minilm+mmr(λ=0.75)`, `amer@rrf(k=60)`, `amer[sampling=teacher]`, `bm25+prf` (see README, 'Systems')."""
    if what is Kind.tasks:
        out.print(_plugin_table("registered tasks", TASKS.all()))
        return
    if what is Kind.retrievers:
        out.print(_plugin_table("registered retrievers", RETRIEVERS.all()))
        for table in _stage_tables():
            out.print(table)
        out.print("system names: retriever[params]+expander(params)@fuser(params)+reranker(params), e.g. "
                  "'minilm+mmr', 'amer@rrf(k=60)', 'amer[sampling=teacher]'", highlight=False)
        return
    if what is Kind.stages:
        for table in _stage_tables():
            out.print(table)
        return
    registry = {Kind.fusers: FUSERS, Kind.rerankers: RERANKERS, Kind.expanders: EXPANDERS}[what]
    out.print(_plugin_table(f"registered {what.value}", registry.all()))


@app.command("run")
def run_cmd(
    task: str = typer.Option(..., "--task", help="a registered task (see `bench list tasks`)"),
    retriever: str = typer.Option(
        ..., "--retriever",
        help="retriever or system name(s), comma-separated, e.g. minilm, 'minilm+mmr', 'amer@rrf(k=60)'",
    ),
    expand: str = typer.Option(None, "--expand", help="query expansion before the retriever: llm, prf, subqueries"),
    fusion: str = typer.Option(None, "--fusion", help="fusion of a query's lists: round-robin, rrf, max, sum"),
    rerank: list[str] = typer.Option(None, "--rerank", help="re-ranking after fusion: mmr (repeatable)"),
    k: str = typer.Option(None, "--k", help="cutoffs, e.g. 10,100 (default: the task's own)"),
    metric: list[str] = typer.Option(None, "--metric", help="extra metric names, e.g. MRECALL@2 (repeatable)"),
    task_param: list[str] = typer.Option(None, "--task-param", "-t", help="task parameter key=value (repeatable)"),
    retriever_param: list[str] = typer.Option(
        None, "--retriever-param", "-r",
        help="stage parameter key=value or stage.key=value, e.g. -r amer.steps=100 -r mmr.grid=0.5,0.9 (repeatable)",
    ),
    llm_base_url: str = typer.Option(None, "--llm-base-url",
                                     help="OpenAI-compatible endpoint of --expand llm|subqueries (else "
                                          "$OPENAI_BASE_URL)"),
    llm_model: str = typer.Option(None, "--llm-model", help="the endpoint's model for --expand llm|subqueries"),
    llm_api_key_env: str = typer.Option(None, "--llm-api-key-env",
                                        help="name of the environment variable holding the API key (default "
                                             "OPENAI_API_KEY); the key itself is never stored"),
    seed: int = typer.Option(0, help="seed for everything the retriever samples"),
    split: str = typer.Option("test", help="the split to evaluate"),
    retrain: bool = typer.Option(False, "--retrain", help="train again even when a matching checkpoint exists"),
    trust_remote_code: bool = typer.Option(
        False, "--trust-remote-code", help="let models run their repository's code (stella, inf-retriever, nv-embed)"
    ),
    device: str = typer.Option("auto", help="auto (CUDA when present), cpu, cuda (all GPUs) or cuda:N"),
    index: str = typer.Option("flat", "--index", help="flat | hnsw | ivf | ivfpq | a FAISS index_factory string"),
    nprobe: int = typer.Option(None, "--nprobe", help="IVF lists searched per query (default 32)"),
    ef_search: int = typer.Option(None, "--ef-search", help="HNSW efSearch (default 128)"),
    rescore: int = typer.Option(0, "--rescore", help="re-rank an approximate index's top N by exact cosine"),
    fp16_index: bool = typer.Option(False, "--fp16-index", help="store corpus vectors (and GPU indexes) in float16"),
    results_dir: Path = typer.Option(Path("results"), help="where run files are written"),
) -> None:
    """Evaluate systems on a task; writes results/<task>/<system>/<run-id>.json and .trec."""
    names = split_systems(retriever)
    if not names:
        raise BenchError(f"--retriever {retriever!r} names no retriever; give one or more, e.g. --retriever minilm "
                         "(see `bench list retrievers`)")
    task_obj = build_task(task, task_param or [])
    preflight(results_dir, task_obj)  # results folder writable, disk for the caches: checked before any work
    ks = parse_ks(k) if k else task_obj.default_ks
    metrics = None
    if metric:
        from bench.metrics import default_metrics

        metrics = sorted(set(default_metrics(ks)) | {parse_metric(m) for m in metric})
    pairs = list(retriever_param or [])
    base_url = llm_base_url or os.environ.get("OPENAI_BASE_URL") or None
    llm_given = [f for f, v in (("--llm-base-url", llm_base_url), ("--llm-model", llm_model),
                                ("--llm-api-key-env", llm_api_key_env)) if v]
    specs = [system_spec(name, expand, fusion, rerank or []) for name in names]
    systems = []
    used: set[str] = set()
    for spec in specs:
        extra: list[str] = []
        if spec.expander is not None:
            meta, _ = EXPANDERS.get(spec.expander.name)
            fields = set(meta.param_defaults())
            for key, value in (("base_url", base_url), ("model", llm_model), ("api_key_env", llm_api_key_env)):
                if value and key in fields:
                    extra.append(f"expander.{key}={value}")
        if trust_remote_code and "trust_remote_code" in RETRIEVERS.get(spec.retriever.name)[0].param_defaults():
            extra.append("retriever.trust_remote_code=true")
        spec, took = route_params(spec, pairs + extra)
        used |= took
        systems.append(build_system(spec))
    unused_params(pairs, used, [format_system(s) for s in specs])
    if llm_given and not any(s.expander is not None and "model" in EXPANDERS.get(s.expander.name)[0].param_defaults()
                             for s in systems):
        raise BenchError(f"{', '.join(llm_given)} set options of an LLM expander, but no system uses one; add "
                         "--expand llm or --expand subqueries")
    from bench.index import IndexSpec

    session = Session(device=device, index=IndexSpec(index, nprobe=nprobe, ef_search=ef_search, rescore=rescore,
                                                     fp16=fp16_index))
    data = session.task_data(task_obj)
    for system in systems:  # every system is checked before the first one runs
        check_system(system, data)
    rows = []
    for system in systems:
        result, path = run(task, system.name, ks, task_param or [], seed=seed, split=split, retrain=retrain,
                           results_dir=results_dir, session=session, metrics=metrics, system=system)
        rows.append((result, path))
    names_ = list(rows[0][0].summary)
    table = Table(title=f"{task} — {split} split, {len(rows[0][0].query_ids)} queries")
    table.add_column("system")
    for n in names_:
        table.add_column(n, justify="right")
    table.add_column("time (s)", justify="right")
    for result, _ in rows:
        cells = [f"{result.summary[n]:.4f}" for n in names_]
        table.add_row(escape(result.system), *cells, f"{result.timings['total']:.1f}")  # `[…]` is not markup
    out.print(table)
    for result, path in rows:
        out.print(f"[dim]{escape(result.system)}: {escape(str(path))}[/]", highlight=False)
