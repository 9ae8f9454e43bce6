"""`bench list` and `bench run`."""

from __future__ import annotations

import os
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from bench.cli import options as opt
from bench.cli.app import app
from bench.cli.output import print_whole
from bench.errors import BenchError
from bench.registry import REGISTRIES, PluginMeta

if TYPE_CHECKING:
    from bench.results.record import RunResult

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
        text = one_line(kind + meta.description, out.width - width - 4)  # `bench list <kind> NAME` shows the rest
        out.print(f"  {escape(_shown(meta)).ljust(width)}  {escape(text)}", highlight=False, soft_wrap=True)


def one_line(text: str, width: int) -> str:
    """`text` cut to `width` characters at a word boundary, with "…" where it was cut (never inside a word, a number
    or a path)."""
    if len(text) <= width:
        return text
    cut = text[:max(width - 2, 1) + 1]
    cut = cut[:cut.rindex(" ")] if " " in cut else cut[:max(width - 2, 1)]
    return cut.rstrip(" ,;:(-") + " …"


def _default_text(key: str, value: object, defaults: dict[str, object]) -> str:
    """A default as `bench list` shows it; a training-recipe parameter's None with what each recipe sets."""
    if value is None and "recipe" in defaults:
        from bench.train.config import RECIPES

        if key in RECIPES["harness"]:
            return "None = the recipe's: " + ", ".join(f"{r} {values[key]!r}" for r, values in RECIPES.items())
    return repr(value)


def _print_plugin(registry_kind: str, name: str) -> None:
    """Everything about one plugin: description, how to use it, and every parameter with its default."""
    meta = REGISTRIES[registry_kind].all().get(name) or REGISTRIES[registry_kind].get(name)[0]  # `st:` by itself too
    out.print(f"[bold]{escape(_shown(meta))}[/] ({escape(meta.kind)}): {escape(meta.description)}", highlight=False,
              soft_wrap=True)
    if registry_kind in _USE:
        out.print("use as: " + escape(_USE[registry_kind].format(name=meta.name)), highlight=False, soft_wrap=True)
    defaults = meta.param_defaults()
    if not defaults:
        out.print("parameters: none", highlight=False)
        return
    table = Table("parameter", "default", title=None, show_edge=False)
    names = meta.param_names()
    for key, value in defaults.items():
        table.add_row(escape(names.get(key, key)), escape(_default_text(key, value, defaults)))
    print_whole(out, table)
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
            if REGISTRIES[kind].has(name) or name in REGISTRIES[kind].all():
                _print_plugin(kind, name)
                return
        REGISTRIES[kinds[0]].get(name)  # the error with the close matches
    titles = {"expander": "query expanders (before the retriever)", "fuser": "fusers (a query's lists → one)",
              "reranker": "re-rankers (after fusion)", "measure": "registered measures (a metric is MEASURE@k)"}
    for kind in kinds:
        _print_kind(kind, titles.get(kind, f"registered {kind}s"))
    if what is Kind.retrievers:
        out.print(escape("system names: retriever[params]+expander(params)@fuser(params)+reranker(params)"),
                  highlight=False, soft_wrap=True)
        out.print("  e.g. 'minilm+mmr', 'amer@rrf(k=60)' (see `bench list stages`)", highlight=False, soft_wrap=True)
        out.print("one retriever and its parameters: `bench list retrievers NAME`", highlight=False, soft_wrap=True)


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
    jobs: int = typer.Option(0, "--jobs", help="systems that train (amer, single-query) run side by side, each in "
                             "its own process with one training thread (0 = one per CPU core; 1 = one at a time)"),
) -> None:
    """Evaluate systems on a task; writes results/<task>/<system>/<run-id>.json and .trec.

    Under torchrun the ranks share the corpus encoding and the search out; rank 0 writes the one results file.
    Otherwise two or more trained systems run side by side in --jobs processes (a training step is one thread's work,
    so the cores train different systems; the weights are those of one at a time); the others run in this process."""
    from bench.distributed import init as join_ranks
    from bench.evaluate import check, evaluate
    from bench.systems.retriever import Trainable

    if jobs < 0:
        raise BenchError(f"--jobs must be ≥ 0, got {jobs}")
    world = join_ranks()  # None unless started by torchrun with several processes
    spec = _RunSpec(task, list(task_param or []), retriever, list(retriever_param or []), expand, fusion,
                    list(rerank or []), {"base_url": llm_base_url, "model": llm_model, "api_key_env": llm_api_key_env},
                    trust_remote_code, k, list(metric or []), seed, split, retrain, device,
                    (index, nprobe, ef_search, rescore, fp16_index), results_dir)
    systems, task_obj, metrics, session = spec.build(world)
    data = check(task_obj, systems, metrics, session, results_dir)  # every system is checked before the first runs
    trained = [] if world is not None else [i for i, s in enumerate(systems) if isinstance(s.retriever, Trainable)]
    workers = min(len(trained), jobs or os.cpu_count() or 1)
    elsewhere: dict[int, Any] = {}
    if workers > 1:
        pool = worker_pool(workers)
        elsewhere = {i: pool.submit(_evaluate_one, spec, i) for i in trained}
    try:
        here = {i: evaluate(task_obj, system, metrics, session, seed=seed, split=split, retrain=retrain,
                            results_dir=results_dir) for i, system in enumerate(systems) if i not in elsewhere}
        rows = [elsewhere[i].result() if i in elsewhere else here[i] for i in range(len(systems))]
    finally:
        if elsewhere:
            pool.shutdown(cancel_futures=True)
    if world is not None and not world.is_main:
        return  # rank 0 prints
    scale = f"; {data.info['scale']}" if data.info.get("scale") else ""  # e.g. a synthetic task's sizes
    title = f"{task} on {corpus_title(data)} — {split} split, {len(data.split(split)):,} queries{scale}"
    print_whole(out, summary_table(escape(title), [result for result, _ in rows]))
    for result, path in rows:  # whole paths, never wrapped (bench/cli/output.py)
        out.print(f"[dim]{escape(result.system)}:[/] {escape(str(path))}", highlight=False, soft_wrap=True)


def summary_table(title: str, results: list[RunResult]) -> Table:
    """Mean of every metric of each run: a row per system and measure, a column per cutoff (narrow enough for 80
    columns with the default metrics)."""
    measures: list[str] = []
    ks: list[int] = []
    for result in results:
        for name in result.summary:
            measure, _, cutoff = name.rpartition("@")
            if measure not in measures:
                measures.append(measure)
            if int(cutoff) not in ks:
                ks.append(int(cutoff))
    table = Table(title=title)
    table.add_column("system")
    table.add_column("measure")
    for k in sorted(ks):
        table.add_column(f"@{k}", justify="right")
    table.add_column("time (s)", justify="right")
    for result in results:
        for i, measure in enumerate(measures):
            values = [result.summary.get(f"{measure}@{k}") for k in sorted(ks)]
            table.add_row(escape(result.system) if i == 0 else "", measure,  # escape: `[…]` in a name is no markup
                          *("–" if v is None else f"{v:.4f}" for v in values),
                          f"{result.timings['total']:.1f}" if i == 0 else "", end_section=i == len(measures) - 1)
    return table


def corpus_title(data: Any) -> str:
    """How the console names a task's corpus: its tag when the user chose it (`psgs_w100-1a2b3c4d`, `wiki-vital`),
    else the file it was read from, with its size."""
    tag = data.info.get("corpus_tag")
    n = len(data.corpus)
    if tag:
        return f"corpus {tag} ({n:,} passages)"
    source = data.corpus.source
    if source is not None and hasattr(source, "describe"):
        path = Path(str(source.describe().get("path", "")))
        return f"corpus {path.parent.name}/{path.name} ({n:,} passages)"
    return f"its {n:,} corpus vectors"


@app.command("encode")
def encode_cmd(
    task: opt.Task,
    retriever: opt.Retriever,
    task_param: opt.TaskParams = None,
    retriever_param: opt.RetrieverParams = None,
    trust_remote_code: bool = typer.Option(
        False, "--trust-remote-code", help="let models run their repository's code (stella, inf-retriever, nv-embed)"
    ),
    device: opt.Device = "auto",
    fp16_index: bool = typer.Option(False, "--fp16-index", help="store corpus vectors in float16"),
) -> None:
    """Encode a task's corpus with each retriever's document encoder: the cached embedding shards only (no queries,
    no search), for a long job run ahead of `bench run`.

    Under torchrun the ranks share the shards out (shard i on rank i mod N) and write them into the shared cache."""
    from bench.data.task import build_task
    from bench.distributed import init as join_ranks
    from bench.index import IndexSpec
    from bench.systems.build import build_systems
    from bench.systems.retriever import VectorRetriever
    from bench.systems.session import Session

    world = join_ranks()
    systems = build_systems(retriever, retriever_param or [], trust_remote_code=trust_remote_code)
    task_obj = build_task(task, task_param or [])
    session = Session(device=device, index=IndexSpec(fp16=fp16_index), world=world)
    data = session.task_data(task_obj)
    quiet = world is not None and not world.is_main
    for system in systems:
        r = system.retriever
        if not isinstance(r, VectorRetriever):
            if not quiet:
                out.print(f"{escape(r.name)}: no corpus embeddings (it ranks by itself)", highlight=False,
                          soft_wrap=True)
            continue
        store, space = session.corpus_vectors(data, r)
        if quiet:
            continue
        where = getattr(store, "paths", None)
        place = f" in {escape(str(where[0].parent))}" if where else " (the task's own vectors, in memory)"
        out.print(f"{escape(r.name)}: {store.ntotal:,} × {store.dim} embeddings ({escape(space)}){place}",
                  highlight=False, soft_wrap=True)  # one line: the folder is pasted as it stands


@dataclass
class _RunSpec:
    """What `bench run` was asked, in a form a worker process can rebuild the same systems, task and session from."""

    task: str
    task_param: list[str]
    retriever: str
    retriever_param: list[str]
    expand: str | None
    fusion: str | None
    rerank: list[str]
    llm: dict[str, str | None]
    trust_remote_code: bool
    k: str | None
    metric: list[str]
    seed: int
    split: str
    retrain: bool
    device: str
    index: tuple[str, int | None, int | None, int, bool]
    results_dir: Path

    def build(self, world: Any = None) -> tuple[list[Any], Any, list[Any], Any]:
        from bench.data.task import build_task
        from bench.index import IndexSpec
        from bench.metrics import default_metrics, parse_ks, parse_metric
        from bench.systems.build import build_systems
        from bench.systems.session import Session

        systems = build_systems(self.retriever, self.retriever_param, expand=self.expand, fusion=self.fusion,
                                rerank=self.rerank, llm=self.llm,
                                trust_remote_code=self.trust_remote_code)  # no --llm-base-url: the env is read
        task_obj = build_task(self.task, self.task_param)
        ks = parse_ks(self.k) if self.k else task_obj.default_ks
        metrics = default_metrics(ks)
        if self.metric:
            metrics = sorted(set(metrics) | {parse_metric(m) for m in self.metric})
        kind, nprobe, ef_search, rescore, fp16 = self.index
        session = Session(device=self.device, index=IndexSpec(kind, nprobe=nprobe, ef_search=ef_search,
                                                              rescore=rescore, fp16=fp16), world=world)
        return systems, task_obj, metrics, session


def _evaluate_one(spec: _RunSpec, i: int) -> tuple[Any, Path]:
    """System `i` of a `bench run`, evaluated in a worker process: (RunResult, path of the stored run)."""
    from bench.evaluate import evaluate

    systems, task_obj, metrics, session = spec.build()
    return evaluate(task_obj, systems[i], metrics, session, seed=spec.seed, split=spec.split, retrain=spec.retrain,
                    results_dir=spec.results_dir)


def worker_pool(workers: int) -> Any:
    """Processes for systems or settings run side by side: spawned, not forked (a fork after torch's or FAISS's
    thread pools started can hang), their progress shown as plain lines (two live bars would overwrite each other)."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    return ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"), initializer=_plain_progress)


def _plain_progress() -> None:
    os.environ["TTY_COMPATIBLE"] = "0"  # rich: no live display in a worker; the training log prints plain lines
