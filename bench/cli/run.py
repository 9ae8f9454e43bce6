"""`bench list` and `bench run`."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from bench.cli import options as opt
from bench.cli.app import app
from bench.registry import REGISTRIES, PluginMeta

out = Console()


class Kind(StrEnum):
    tasks = "tasks"
    retrievers = "retrievers"
    expanders = "expanders"
    fusers = "fusers"
    rerankers = "rerankers"
    stages = "stages"
    objectives = "objectives"
    metrics = "metrics"


_USE = {"expander": "<retriever>+{name}  or  --expand {name}", "fuser": "<retriever>@{name}  or  --fusion {name}",
        "reranker": "<retriever>+{name}  or  --rerank {name}", "measure": "{name}@k, e.g. {name}@10"}
_KINDS = {"stages": ["expander", "fuser", "reranker"], "metrics": ["measure"]}  # else the plural's singular


def _shown(meta: PluginMeta) -> str:
    aliases = meta.extra.get("aliases", ())
    return meta.name + (f" ({', '.join(aliases)})" if aliases else "")


def _print_kind(registry_kind: str, title: str) -> None:
    """One line per plugin: its name (and aliases), its kind when it has one of its own, its description."""
    items = REGISTRIES[registry_kind].all()
    out.print(f"[bold]{escape(title)}[/]", highlight=False)
    width = max((len(_shown(m)) for m in items.values()), default=0)
    for meta in items.values():
        kind = f"[{meta.kind}] " if meta.kind != registry_kind else ""
        out.print(f"  {escape(_shown(meta)).ljust(width)}  {escape(kind + meta.description)}", highlight=False,
                  no_wrap=True, overflow="ellipsis")  # one line each; `bench list <kind> NAME` shows the rest


def _print_plugin(registry_kind: str, name: str) -> None:
    """Everything about one plugin: description, how to use it, and every parameter with its default."""
    meta, _ = REGISTRIES[registry_kind].get(name)
    out.print(f"[bold]{escape(_shown(meta))}[/] ({escape(meta.kind)}): {escape(meta.description)}", highlight=False)
    if registry_kind in _USE:
        out.print("use as: " + escape(_USE[registry_kind].format(name=meta.name)), highlight=False)
    defaults = meta.param_defaults()
    if not defaults:
        out.print("parameters: none", highlight=False)
        return
    table = Table("parameter", "default", title=None, show_edge=False)
    names = meta.param_names()
    for key, value in defaults.items():
        table.add_row(escape(names.get(key, key)), escape(repr(value)))
    out.print(table)
    if registry_kind == "task":
        out.print("set with -t key=value", highlight=False)
    elif registry_kind in ("retriever", "expander", "fuser", "reranker"):
        out.print(f"set with -r key=value (or -r {meta.name}.key=value)", highlight=False)


@app.command("list")
def list_plugins(
    what: Kind = typer.Argument(..., help="tasks, retrievers, expanders, fusers, rerankers, stages, objectives or "
                                          "metrics"),
    name: str = typer.Argument(None, help="one plugin: its description, use and every parameter with its default"),
) -> None:
    """List registered plugins one per line, or everything about one of them (`bench list retrievers minilm`).

    A system is named like `minilm+mmr(λ=0.75)`, `amer@rrf(k=60)`, `amer[sampling=teacher]`, `bm25+prf`: a retriever,
    then its stages (README, 'Systems')."""
    kinds = _KINDS.get(what.value, [what.value[:-1]])
    if name is not None:
        for kind in kinds:
            if REGISTRIES[kind].has(name):
                _print_plugin(kind, name)
                return
        REGISTRIES[kinds[0]].get(name)  # the error with the close matches
    titles = {"expander": "query expanders (before the retriever)", "fuser": "fusers (a query's lists → one)",
              "reranker": "re-rankers (after fusion)", "measure": "registered measures (a metric is MEASURE@k)"}
    for kind in kinds:
        _print_kind(kind, titles.get(kind, f"registered {kind}s"))
    if what is Kind.retrievers:
        out.print("system names: retriever[params]+expander(params)@fuser(params)+reranker(params), e.g. "
                  "'minilm+mmr', 'amer@rrf(k=60)' (see `bench list stages`)", highlight=False)


@app.command("run")
def run_cmd(
    task: opt.Task,
    retriever: opt.Retriever,
    expand: str = typer.Option(None, "--expand", help="query expansion before the retriever: llm, prf, subqueries"),
    fusion: str = typer.Option(None, "--fusion", help="fusion of a query's lists: round-robin, rrf, max, sum"),
    rerank: list[str] = typer.Option(None, "--rerank", help="re-ranking after fusion: mmr (repeatable)"),
    k: opt.Cutoffs = None,
    metric: list[str] = typer.Option(None, "--metric", help="extra metric names, e.g. MRECALL@2 (repeatable)"),
    task_param: opt.TaskParams = None,
    retriever_param: opt.RetrieverParams = None,
    llm_base_url: str = typer.Option(None, "--llm-base-url",
                                     help="OpenAI-compatible endpoint of --expand llm|subqueries (else "
                                          "$OPENAI_BASE_URL)"),
    llm_model: str = typer.Option(None, "--llm-model", help="the endpoint's model for --expand llm|subqueries"),
    llm_api_key_env: str = typer.Option(None, "--llm-api-key-env",
                                        help="name of the environment variable holding the API key (default "
                                             "OPENAI_API_KEY); the key itself is never stored"),
    seed: opt.Seed = 0,
    split: str = typer.Option("test", help="the split to evaluate"),
    retrain: opt.Retrain = False,
    trust_remote_code: bool = typer.Option(
        False, "--trust-remote-code", help="let models run their repository's code (stella, inf-retriever, nv-embed)"
    ),
    device: opt.Device = "auto",
    index: str = typer.Option("flat", "--index", help="flat | hnsw | ivf | ivfpq | a FAISS index_factory string"),
    nprobe: int = typer.Option(None, "--nprobe", help="IVF lists searched per query (default 32)"),
    ef_search: int = typer.Option(None, "--ef-search", help="HNSW efSearch (default 128)"),
    rescore: int = typer.Option(0, "--rescore", help="re-rank an approximate index's top N by exact cosine"),
    fp16_index: bool = typer.Option(False, "--fp16-index", help="store corpus vectors (and GPU indexes) in float16"),
    results_dir: opt.ResultsDir = Path("results"),
) -> None:
    """Evaluate systems on a task; writes results/<task>/<system>/<run-id>.json and .trec."""
    from bench.data.task import build_task
    from bench.evaluate import check, evaluate
    from bench.index import IndexSpec
    from bench.metrics import default_metrics, parse_ks, parse_metric
    from bench.systems.build import build_systems
    from bench.systems.session import Session

    systems = build_systems(retriever, retriever_param or [], expand=expand, fusion=fusion, rerank=rerank or [],
                            llm={"base_url": llm_base_url, "model": llm_model, "api_key_env": llm_api_key_env},
                            trust_remote_code=trust_remote_code)  # no --llm-base-url: the expander reads the env
    task_obj = build_task(task, task_param or [])
    ks = parse_ks(k) if k else task_obj.default_ks
    metrics = default_metrics(ks)
    if metric:
        metrics = sorted(set(metrics) | {parse_metric(m) for m in metric})
    session = Session(device=device, index=IndexSpec(index, nprobe=nprobe, ef_search=ef_search, rescore=rescore,
                                                     fp16=fp16_index))
    data = check(task_obj, systems, metrics, session, results_dir)  # every system is checked before the first runs
    rows = [evaluate(task_obj, system, metrics, session, seed=seed, split=split, retrain=retrain,
                     results_dir=results_dir) for system in systems]
    names = list(rows[0][0].summary)
    scale = f"; {data.info['scale']}" if data.info.get("scale") else ""  # e.g. a synthetic task's sizes
    table = Table(title=f"{task} — {split} split, {len(data.split(split))} queries{scale}")
    table.add_column("system")
    for n in names:
        table.add_column(n, justify="right")
    table.add_column("time (s)", justify="right")
    for result, _ in rows:
        table.add_row(escape(result.system), *(f"{result.summary[n]:.4f}" for n in names),
                      f"{result.timings['total']:.1f}")  # escape: `[…]` in a system name is not markup
    out.print(table)
    for result, path in rows:
        out.print(f"[dim]{escape(result.system)}: {escape(str(path))}[/]", highlight=False)
