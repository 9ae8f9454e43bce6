"""One run, start to end, as a pipeline of stages (bench/stages/base.py):

    task → [expander] → retriever: query vectors → search every vector (scores kept)   ┐
                        or its own scored lists (bm25)                                 ├→ fuser → [re-rankers]
                                                                                       ┘   → metrics → store

The corpus index is built only for systems whose retriever produces vectors. A system is named by its canonical
name (bench/stages/system.py), which is recorded in the result and names its folder.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console

from bench.cache import stable_hash
from bench.device import resolve as resolve_placement
from bench.diversity import RECORD_KEY, run_record
from bench.errors import BenchError
from bench.fusion import round_robin_merge
from bench.index import Index, IndexSpec, VectorStore, corpus_store, open_index
from bench.metrics import Metric, check_cutoffs, default_metrics
from bench.params import params_dict, parse_params
from bench.preflight import begin_run
from bench.progress import STDERR, make_progress
from bench.registry import EXPANDERS, FUSERS, RERANKERS, RETRIEVERS, TASKS, PluginMeta
from bench.results import RunResult, save_run
from bench.retriever import Retriever, RunContext
from bench.stages.base import (
    Candidates,
    DocumentVectors,
    Expander,
    Fuser,
    PerVectorLists,
    QueryVectors,
    Reranker,
    TuningData,
    documents_of,
)
from bench.stages.system import (
    DEFAULT_FUSER,
    StageRef,
    SystemSpec,
    build_params,
    field_alias,
    format_system,
    identity_params,
    parse_system,
)
from bench.task import Split, Task, TaskData
from bench.versions import package_versions

Params = Sequence[str] | Mapping[str, Any]
VALIDATION_NAMES = ("validation", "dev", "val")
VALIDATION_SAMPLE = 500  # train queries drawn (seeded) to tune a re-ranker when the task has no validation split


def build_task(name: str, params: Params = ()) -> Task:
    meta, _ = TASKS.get(name)
    task = meta.factory(parse_params(meta.params, f"task {name}", params), name)
    if not isinstance(task, Task):
        raise BenchError(f"task {name!r} does not build a bench.task.Task")
    return task


def build_retriever(name: str, params: Params = ()) -> Retriever:
    meta, spec = RETRIEVERS.get(name)
    retriever = meta.factory(parse_params(meta.params, f"retriever {name}", params), name, spec)
    if not isinstance(retriever, Retriever):
        raise BenchError(f"retriever {name!r} does not build a bench.retriever.Retriever")
    return retriever


# ------------------------------------------------------------------------------------------------------------ systems
@dataclass
class System:
    """A built system: its stages and their params, and its canonical name."""

    spec: SystemSpec  # canonical: only non-default, result-changing params
    retriever: Retriever
    retriever_meta: PluginMeta
    expander: Expander | None = None
    fuser: Fuser | None = None  # None = the default (round-robin) wherever a query has several lists
    rerankers: list[Reranker] = field(default_factory=list)

    @property
    def name(self) -> str:
        return format_system(self.spec)

    def stages_record(self) -> list[dict[str, Any]]:
        """kind, name and every parameter (defaults included) of each stage: stored in the result."""
        out: list[dict[str, Any]] = [{"kind": "retriever", "name": self.retriever.name,
                                      "params": params_dict(self.retriever.params)}]
        for kind, stage in (("expander", self.expander), ("fuser", self.fuser)):
            if stage is not None:
                out.append({"kind": kind, "name": stage.name, "params": params_dict(stage.params)})
        out += [{"kind": "reranker", "name": r.name, "params": params_dict(r.params)} for r in self.rerankers]
        return out


def _stage_registry(kind: str) -> Any:
    return {"retriever": RETRIEVERS, "expander": EXPANDERS, "fuser": FUSERS, "reranker": RERANKERS}[kind]


def _prefix_matches(prefix: str, kind: str, ref: StageRef) -> bool:
    if prefix in (ref.name, kind):
        return True
    try:
        meta, _ = _stage_registry(kind).get(prefix)
    except BenchError:
        return False
    return meta.name == _stage_registry(kind).get(ref.name)[0].name


def route_params(spec: SystemSpec, pairs: Sequence[str] | Mapping[str, Any]) -> tuple[SystemSpec, set[str]]:
    """Give every `key=value` / `stage.key=value` pair to the stage(s) of `spec` it addresses.

    `amer.steps=100` (or `retriever.steps=100`) goes to the stage named amer (or of that kind); a plain `steps=100`
    goes to the one stage of the system whose parameters have that key (the retriever first when several do).
    Returns the new spec and the pairs used, so that a caller evaluating several systems can report pairs that no
    system took. A qualified key that the named stage does not know raises a BenchError naming that stage."""
    stages = spec.stages()
    added: dict[int, dict[str, Any]] = {}
    used: set[str] = set()
    items: list[tuple[str, str, Any]] = []  # (pair as written, key, value)
    if isinstance(pairs, Mapping):  # typed values (a config file, a stored run): kept as they are
        items = [(f"{k}={v}", str(k), v) for k, v in pairs.items()]
    else:
        for pair in pairs:
            if "=" not in pair:
                raise BenchError(f"parameter {pair!r} is not of the form key=value (or stage.key=value)")
            k, v = (x.strip() for x in pair.split("=", 1))
            items.append((pair, k, v))
    for pair, key, value in items:
        targets: list[int] = []
        prefix, _, sub = key.rpartition(".")
        qualified = bool(prefix) and _names_a_stage(prefix)
        if qualified:
            for i, (kind, ref) in enumerate(stages):
                if _prefix_matches(prefix, kind, ref):
                    cls = _stage_registry(kind).get(ref.name)[0].params
                    names = _field_names(cls)
                    if field_alias(cls, sub.replace("-", "_")) not in names and field_alias(cls, sub) not in names:
                        known = ", ".join(sorted(names)) or "none"
                        raise BenchError(f"{kind} {ref.name}: unknown parameter {sub!r} (from -r {pair}); known: "
                                         f"{known}")
                    targets.append(i)
            key = sub
        else:
            for i, (kind, ref) in enumerate(stages):
                cls = _stage_registry(kind).get(ref.name)[0].params
                if field_alias(cls, key.replace("-", "_")) in _field_names(cls):
                    targets.append(i)
            if len(targets) > 1:
                if stages[targets[0]][0] == "retriever":
                    targets = targets[:1]
                else:
                    options = ", ".join(f"{stages[i][1].name}.{key}" for i in targets)
                    raise BenchError(f"parameter {key!r} is ambiguous in system {format_system(spec)}: write "
                                     f"{options}")
        for i in targets:
            added.setdefault(i, {})[key] = value
            used.add(pair)
    new = [ref.with_params(added[i]) if i in added else ref for i, (_, ref) in enumerate(stages)]
    kinds = [kind for kind, _ in stages]
    it = iter(zip(kinds, new, strict=True))
    out: dict[str, Any] = {"rerankers": []}
    for kind, ref in it:
        if kind == "reranker":
            out["rerankers"].append(ref)
        else:
            out[kind] = ref
    return SystemSpec(out["retriever"], out.get("expander"), out.get("fuser"), tuple(out["rerankers"])), used


def _field_names(cls: type | None) -> set[str]:
    import dataclasses

    return set() if cls is None else {f.name for f in dataclasses.fields(cls)}


def _names_a_stage(prefix: str) -> bool:
    if prefix in ("retriever", "expander", "fuser", "reranker"):
        return True
    for reg in (RETRIEVERS, EXPANDERS, FUSERS, RERANKERS):
        try:
            reg.get(prefix)
            return True
        except BenchError:
            continue
    return False


def unused_params(pairs: Sequence[str] | Mapping[str, Any], used: set[str], systems: Sequence[str]) -> None:
    """Raise a BenchError for a `-r` pair that no system of the command took, naming the stage it was meant for."""
    if isinstance(pairs, Mapping):
        pairs = [f"{k}={v}" for k, v in pairs.items()]
    for pair in pairs:
        if pair in used:
            continue
        key = pair.split("=", 1)[0].strip()
        prefix, _, sub = key.rpartition(".")
        if prefix and _names_a_stage(prefix):
            raise BenchError(f"-r {pair}: no system of this run has a stage {prefix!r} (systems: "
                             f"{', '.join(systems)})")
        raise BenchError(f"-r {pair}: unknown parameter {key!r}: no stage of {', '.join(systems)} has it; "
                         "address a stage as stage.key=value (see `bench list stages`)")


def system_spec(name: str, expand: str | None = None, fusion: str | None = None,
                rerank: Sequence[str] = ()) -> SystemSpec:
    """The spec of `name` (a retriever or a full system name) with the stages of --expand / --fusion / --rerank."""
    spec = parse_system(name)
    expander, fuser, rerankers = spec.expander, spec.fuser, list(spec.rerankers)
    if expand:
        if expander is not None and expander.name != expand:
            raise BenchError(f"--expand {expand}: system {name!r} already has expander {expander.name!r}")
        expander = expander or StageRef(EXPANDERS.get(expand)[0].name)
    if fusion:
        if fuser is not None and FUSERS.get(fuser.name)[0].name != FUSERS.get(fusion)[0].name:
            raise BenchError(f"--fusion {fusion}: system {name!r} already fuses with {fuser.name!r}")
        fuser = fuser or StageRef(FUSERS.get(fusion)[0].name)
    for r in rerank:
        meta, _ = RERANKERS.get(r)
        rerankers.append(StageRef(meta.name))
    return SystemSpec(spec.retriever, expander, fuser, tuple(rerankers))


def build_system(spec: SystemSpec | str, params: Sequence[str] | Mapping[str, Any] = ()) -> System:
    """Build every stage of a system (after routing `-r` pairs to them) and canonicalise its name."""
    if isinstance(spec, str):
        spec = parse_system(spec)
    if params:
        spec, used = route_params(spec, params)
        unused_params(params, used, [format_system(spec)])
    r_meta, r_spec = RETRIEVERS.get(spec.retriever.name)
    r_params = build_params(r_meta.params, f"retriever {spec.retriever.name}", spec.retriever.params)
    retriever = r_meta.factory(r_params, spec.retriever.name, r_spec)
    if not isinstance(retriever, Retriever):
        raise BenchError(f"retriever {spec.retriever.name!r} does not build a bench.retriever.Retriever")

    def stage(kind: str, ref: StageRef | None, base: type) -> tuple[Any, StageRef | None]:
        if ref is None:
            return None, None
        meta, _ = _stage_registry(kind).get(ref.name)
        p = build_params(meta.params, f"{kind} {meta.name}", ref.params)
        obj = meta.factory(p, meta.name)
        if not isinstance(obj, base):
            raise BenchError(f"{kind} {meta.name!r} does not build a {base.__module__}.{base.__name__}")
        return obj, StageRef(meta.name, identity_params(p))

    expander, e_ref = stage("expander", spec.expander, Expander)
    fuser, f_ref = stage("fuser", spec.fuser, Fuser)
    if f_ref is not None and f_ref.name == DEFAULT_FUSER and not f_ref.params:
        f_ref = None  # the default fuser is not part of the name
    rerankers: list[Reranker] = []
    r_refs: list[StageRef] = []
    for ref in spec.rerankers:
        obj, canon = stage("reranker", ref, Reranker)
        rerankers.append(obj)
        r_refs.append(canon)  # type: ignore[arg-type]
    canonical = SystemSpec(StageRef(spec.retriever.name, identity_params(r_params)), e_ref, f_ref, tuple(r_refs))
    return System(canonical, retriever, r_meta, expander, fuser, rerankers)


def canonical_name(name: str, params: Sequence[str] = ()) -> str:
    """The canonical name of a system name (+ `-r` pairs), without running it."""
    return build_system(name, params).name


# ------------------------------------------------------------------------------------------------------------ session
@dataclass
class Session:
    """Shares loaded tasks and corpus indexes between the runs of one command (one index per corpus × encoder)."""

    device: str = "auto"
    console: Console = field(default_factory=lambda: STDERR)
    index: IndexSpec = field(default_factory=IndexSpec)  # --index, --nprobe, --ef-search, --rescore, --fp16-index
    _tasks: dict[str, TaskData] = field(default_factory=dict)
    _indexes: dict[str, tuple[VectorStore, Index]] = field(default_factory=dict)
    # query vectors of stateless encoders (kind "dense"), so `--retriever minilm,minilm+mmr` encodes the queries once
    _queries: dict[str, QueryVectors] = field(default_factory=dict)

    def task_data(self, task: Task) -> TaskData:
        key = stable_hash([task.name, params_dict(task.params)])
        if key not in self._tasks:
            self._tasks[key] = task.load()
        return self._tasks[key]

    def corpus_index(self, data: TaskData, retriever: Retriever) -> tuple[VectorStore, Index, str]:
        """The corpus's vector store (normalised embeddings; `gather(rows)`) and its index (bench/index.py) for this
        retriever's document encoder. `--device` is resolved once (bench/device.py) and handed to the retriever."""
        placement = resolve_placement(self.device, source="cli")
        place = getattr(retriever, "place", None)
        if place is not None:  # dense / mteb retrievers encode where --device says, unless -r device= overrides
            place(placement)
        encoder = retriever.document_encoder(data)
        if encoder is None:
            if data.corpus.vectors is None:
                raise BenchError(
                    f"retriever {retriever.name!r} has no document encoder, and task {data.name!r} is a text task"
                )
            space = "vectors"
        else:
            space = encoder.cache_key
        key = stable_hash([data.corpus.fingerprint, space, self.index.session_key()])
        if key not in self._indexes:  # the shards (or the task's vectors) are the one copy of the embeddings
            store = corpus_store(data.corpus, encoder, self.index)
            self._indexes[key] = (store, open_index(self.index, store, placement, self.console))
        emb, index = self._indexes[key]
        return emb, index, space


# ------------------------------------------------------------------------------------------------------------- search
def search_lists(index: Any, queries: QueryVectors, depth: int, console: Console | None = None) -> PerVectorLists:
    """Search every present query vector to `depth`, keeping the scores: (n, m, depth) lists with the query mask."""
    n, m, d = queries.shape
    present = np.flatnonzero(queries.mask.ravel())
    flat = queries.vectors.reshape(n * m, d)[present]
    rows = np.full((n * m, depth), -1, dtype=np.int64)
    scores = np.full((n * m, depth), -np.inf, dtype=np.float32)
    if len(present):
        with make_progress(console) as progress:
            bar = progress.add_task("search", total=len(present), status=f"{n} queries × ≤{m} vectors")
            s, r = index.search(flat, depth, progress=lambda step: progress.advance(bar, step))
        rows[present], scores[present] = r, s
    return PerVectorLists(rows.reshape(n, m, depth), scores.reshape(n, m, depth), queries.mask)


def search_and_merge(
    index: Index, query_vectors: np.ndarray, depth: int, console: Console | None = None
) -> np.ndarray:
    """Search each of the m vectors of every query to `depth`, merge the m lists round-robin: (n, depth) rows.
    (The pre-stage API, kept for callers; the pipeline uses search_lists + a Fuser.)"""
    if query_vectors.ndim != 3:
        raise BenchError(f"query vectors must be (n_queries, m, d), got shape {query_vectors.shape}")
    lists = search_lists(index, QueryVectors.dense(query_vectors), depth, console)
    return round_robin_merge(lists.rows, depth)


def fuse(lists: PerVectorLists, fuser: Fuser | None, depth: int, system: str) -> Candidates:
    """One list per query. Queries with one list keep it, with its own scores, unless a fuser was asked for."""
    counts = lists.mask.sum(axis=1)
    if fuser is None:
        if int(counts.max(initial=0)) <= 1:
            first = np.argmax(lists.mask, axis=1)
            idx = np.arange(lists.shape[0])
            return Candidates(lists.rows[idx, first, :depth], lists.scores[idx, first, :depth])
        from bench.fusion.round_robin import RoundRobinFuser

        fuser = RoundRobinFuser(None, DEFAULT_FUSER)
    elif int(counts.max(initial=0)) <= 1:
        raise BenchError(f"system {system}: fusion {fuser.name!r} needs several lists per query, but every query has "
                         "one (use a multi-vector retriever such as amer or oracle, or --expand subqueries)")
    return fuser.fuse(lists, depth).check(f"fuser {fuser.name}")


@dataclass
class BaseOutput:
    """What the stages before re-ranking produced for one split."""

    candidates: Candidates
    queries: QueryVectors | None
    searches: np.ndarray  # (n,) lists searched per query: vectors emitted, or texts after expansion
    llm_calls: int = 0  # LLM calls the expansion took (sent or from the reply cache)

    @property
    def m(self) -> int:
        """The most lists a query had."""
        return int(self.searches.max(initial=0))


def run_base(system: System, split: Split, depth: int, ctx: RunContext, timings: dict[str, float],
             prefix: str = "", memo: dict[str, QueryVectors] | None = None) -> BaseOutput:
    """Expansion → retrieval (vectors + search, or the retriever's own ranking) → fusion, for one split."""
    retriever, n = system.retriever, len(split)
    texts: list[str] | None = None
    owner: np.ndarray | None = None
    if system.expander is not None:
        if split.texts is None:
            raise BenchError(f"expander {system.expander.name!r} rewrites query texts; task {ctx.task.name!r} has "
                             "vector queries")
        t = time.perf_counter()
        expanded = system.expander.expand(list(split.texts), split, ctx)
        timings[prefix + "expand"] = time.perf_counter() - t
        if len(expanded) != n or any(not e for e in expanded):
            raise BenchError(f"expander {system.expander.name!r} must return one non-empty list of texts per query "
                             f"({n} queries, got {len(expanded)} lists)")
        texts = [str(x) for group in expanded for x in group]
        owner = np.repeat(np.arange(n), [len(g) for g in expanded])

    queries: QueryVectors | None = None
    t = time.perf_counter()
    if retriever.produces == "ranking":
        if texts is not None and owner is not None:
            lists = PerVectorLists.from_flat(retriever.rank_texts(texts, depth, ctx).check(retriever.name), owner, n)
        else:
            lists = PerVectorLists.single(retriever.rank(split, depth, ctx).check(retriever.name))
        timings[prefix + "search"] = time.perf_counter() - t
    else:
        assert ctx.index is not None
        if texts is not None:
            queries = QueryVectors.from_flat(retriever.encode_texts(texts, ctx), owner, n)  # type: ignore[arg-type]
        else:
            key = None
            if memo is not None and system.retriever_meta.kind == "dense":  # no training, no side effects
                key = stable_hash([retriever.name, retriever.spec, params_dict(retriever.params), split.fingerprint()])
            if key is not None and memo is not None and key in memo:
                queries = memo[key]
            else:
                out = retriever.encode_queries(split, ctx)
                queries = out if isinstance(out, QueryVectors) else QueryVectors.dense(np.asarray(out,
                                                                                                  dtype=np.float32))
                if key is not None and memo is not None:
                    memo[key] = queries
        timings[prefix + "encode_queries"] = time.perf_counter() - t
        if queries.vectors.ndim != 3 or queries.shape[0] != n or queries.shape[2] != ctx.index.dim:
            raise BenchError(
                f"retriever {retriever.name!r} returned query vectors of shape {queries.vectors.shape}; "
                f"expected ({n}, m, {ctx.index.dim})"
            )
        t = time.perf_counter()
        lists = search_lists(ctx.index, queries, depth, ctx.console)
        timings[prefix + "search"] = time.perf_counter() - t
    t = time.perf_counter()
    cands = fuse(lists, system.fuser, depth, system.name)
    timings[prefix + "fuse"] = time.perf_counter() - t
    searches = lists.mask.sum(axis=1)
    calls = system.expander.llm_calls(split) if system.expander is not None else 0
    return BaseOutput(cands, queries, searches, calls)


def query_cost(base: BaseOutput) -> dict[str, float | None]:
    """What answering one query costs on the query side, as `bench compare` reports it: the mean number of
    searches (query vectors or expanded texts searched; AMER's emitted vectors) and of LLM calls per query."""
    n = len(base.searches)
    return {"searches_per_query": round(float(base.searches.mean()), 4) if n else None,
            "llm_calls_per_query": round(base.llm_calls / n, 4) if n else None}


def validation_split(data: TaskData, eval_split: str, seed: int) -> tuple[Split | None, str]:
    """The queries a re-ranker is tuned on: a validation split, else a seeded sample of train; None when the task
    has neither (the pipeline then cross-fits on two halves of the evaluated split)."""
    for name in VALIDATION_NAMES:
        if name in data.splits and name != eval_split:
            return data.splits[name], name
    if "train" in data.splits and eval_split != "train":
        train = data.splits["train"]
        if len(train) <= VALIDATION_SAMPLE:
            return train, "train"
        idx = np.sort(np.random.default_rng(seed).choice(len(train), VALIDATION_SAMPLE, replace=False))
        return train.subset(idx, "train-sample"), f"train (seeded sample of {VALIDATION_SAMPLE})"
    return None, ""


def _tuning_metric(metrics: Sequence[Metric]) -> Metric:
    """MRECALL at the run's smallest cutoff: the one most sensitive to order (at a large k, e.g. 100 on LIMIT-small's
    46 documents, every λ scores the same)."""
    from bench.metrics import parse_metric

    return parse_metric(f"MRECALL@{min(m.k for m in metrics)}")


def apply_rerankers(system: System, base: BaseOutput, split: Split, docs: DocumentVectors | None, ctx: RunContext,
                    metrics: Sequence[Metric], depth: int, seed: int, timings: dict[str, float],
                    base_depth: int) -> tuple[Candidates, list[dict[str, Any]]]:
    """Tune each re-ranker on validation data (or by 2-fold cross-fitting on `split`), then apply it."""
    cands = base.candidates
    records: list[dict[str, Any]] = []
    if not system.rerankers:
        return cands, records
    for i, r in enumerate(system.rerankers):  # the last one may stop at the run's depth
        r.output_depth = depth if i == len(system.rerankers) - 1 else None
    metric = _tuning_metric(metrics)
    val, val_name = validation_split(ctx.task, split.name, seed)
    val_base: BaseOutput | None = None
    if val is not None and any(_tunes(r) for r in system.rerankers):
        val_base = run_base(system, val, base_depth, ctx, timings, prefix="validation_")
    for reranker in system.rerankers:
        t = time.perf_counter()
        rec: dict[str, Any] = {"name": reranker.name}
        if not _tunes(reranker):
            cands = reranker.rerank(cands, base.queries, docs, ctx).check(f"reranker {reranker.name}")
            if val_base is not None:  # a later re-ranker tunes on what this one made of the validation queries
                val_base = dataclasses.replace(
                    val_base, candidates=reranker.rerank(val_base.candidates, val_base.queries, docs, ctx))
        elif val is not None and val_base is not None:
            data = _tuning_data(val, val_base.candidates, val_base.queries, metric)
            rec["tuning"] = {"split": val_name, "queries": len(val), **reranker.tune(data, docs, ctx)}
            cands = reranker.rerank(cands, base.queries, docs, ctx).check(f"reranker {reranker.name}")
            val_base = dataclasses.replace(
                val_base, candidates=reranker.rerank(val_base.candidates, val_base.queries, docs, ctx))
        else:
            cands, folds = _cross_fit(reranker, cands, base.queries, split, docs, ctx, metric, seed)
            rec["tuning"] = {"split": f"{split.name} (2-fold cross-fitting: each half re-ranked with the value "
                                      "tuned on the other half)", "folds": folds}
            # a tuned value differs per fold: record the list of fold values, not the last fold's
            rec.update({k: ([f.get(k) for f in folds] if all(k in f for f in folds) else v)
                        for k, v in reranker.info().items()})
        if "tuning" not in rec or "folds" not in rec["tuning"]:
            rec.update(reranker.info())
        timings[f"rerank_{reranker.name}"] = time.perf_counter() - t
        records.append(rec)
    return cands, records


def _tunes(reranker: Reranker) -> bool:
    return type(reranker).tune is not Reranker.tune and bool(getattr(reranker, "wants_tuning", True))


def _tuning_data(split: Split, cands: Candidates, queries: QueryVectors | None, metric: Metric) -> TuningData:
    targets = split.targets

    def evaluate(c: Candidates) -> float:
        return float(metric.compute(c.rows, targets).mean())

    return TuningData(split, cands, queries, targets, evaluate, str(metric))


def _subset_queries(q: QueryVectors | None, idx: np.ndarray) -> QueryVectors | None:
    return None if q is None else QueryVectors(q.vectors[idx], q.mask[idx])


def _cross_fit(reranker: Reranker, cands: Candidates, queries: QueryVectors | None, split: Split,
               docs: DocumentVectors | None, ctx: RunContext, metric: Metric,
               seed: int) -> tuple[Candidates, list[dict[str, Any]]]:
    """Two seeded halves A, B of the evaluated split: tune on A, re-rank B; tune on B, re-rank A. No query's own
    relevance labels choose the value it is re-ranked with."""
    n = len(split)
    perm = np.random.default_rng(seed).permutation(n)
    halves = [np.sort(perm[: n // 2]), np.sort(perm[n // 2:])]
    out_rows: np.ndarray | None = None
    out_scores: np.ndarray | None = None
    folds: list[dict[str, Any]] = []
    for tune_idx, apply_idx in ((halves[0], halves[1]), (halves[1], halves[0])):
        sub = split.subset(tune_idx, f"{split.name}-fold")
        sub_cands = Candidates(cands.rows[tune_idx], cands.scores[tune_idx])
        record = reranker.tune(_tuning_data(sub, sub_cands, _subset_queries(queries, tune_idx), metric), docs, ctx)
        folds.append({"tuned_on": len(tune_idx), "applied_to": len(apply_idx), **record})
        part = reranker.rerank(Candidates(cands.rows[apply_idx], cands.scores[apply_idx]),
                               _subset_queries(queries, apply_idx), docs, ctx).check(f"reranker {reranker.name}")
        if out_rows is None:
            out_rows = np.full((n, part.k), -1, dtype=np.int64)
            out_scores = np.full((n, part.k), -np.inf, dtype=np.float32)
        out_rows[apply_idx], out_scores[apply_idx] = part.rows, part.scores  # type: ignore[index]
    assert out_rows is not None and out_scores is not None
    return Candidates(out_rows, out_scores), folds


def check_system(system: System, data: TaskData) -> None:
    """Refuse, before any work, a system whose stages do not fit each other or the task (one clear BenchError)."""
    retriever = system.retriever
    needs_index = retriever.produces != "ranking"
    for r in system.rerankers:
        if r.needs_vectors and not needs_index:
            raise BenchError(f"system {system.name}: re-ranker {r.name!r} needs document embeddings, and retriever "
                             f"{retriever.name!r} ranks by its own scores with none (try a dense retriever such as "
                             "minilm)")
    if system.expander is not None and data.modality != "text":
        raise BenchError(f"system {system.name}: expander {system.expander.name!r} rewrites query texts; task "
                         f"{data.name!r} has vector queries")
    if needs_index and data.corpus.vectors is None and retriever.document_encoder(data) is None:
        raise BenchError(f"system {system.name}: retriever {retriever.name!r} has no document encoder, and task "
                         f"{data.name!r} is a text task")


# ---------------------------------------------------------------------------------------------------------------- run
def run(
    task_name: str,
    retriever_name: str,
    ks: Sequence[int],
    task_params: Params = (),
    retriever_params: Params = (),
    seed: int = 0,
    split: str = "test",
    retrain: bool = False,
    results_dir: str | Path = "results",
    session: Session | None = None,
    metrics: Sequence[Metric] | None = None,
    system: System | None = None,
) -> tuple[RunResult, Path]:
    """Evaluate one system on one task and store the result atomically; returns it and its path.

    `retriever_name` is a retriever or a full system name (`minilm+mmr`, `amer@rrf(k=60)`); `retriever_params` are
    `key=value` / `stage.key=value` pairs routed to its stages. Or pass a built `system`."""
    session = session or Session()
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    task = build_task(task_name, task_params)
    begin_run(results_dir, task, task=task_name, task_params=task_params, retriever=retriever_name,  # bench/preflight
              retriever_params=retriever_params, seed=seed, split=split, ks=list(ks), index=session.index)
    if system is None:
        system = build_system(retriever_name, retriever_params)
    retriever = system.retriever
    metrics = list(metrics) if metrics else default_metrics(ks)
    depth = max(m.k for m in metrics)
    base_depth = max([depth] + [int(getattr(r, "depth", depth)) for r in system.rerankers])

    t = time.perf_counter()
    data = session.task_data(task)
    timings["load_task"] = time.perf_counter() - t
    check_cutoffs(metrics, len(data.corpus), task_name)  # k > corpus size is refused (bench/metrics)

    check_system(system, data)
    needs_index = retriever.produces != "ranking"

    emb: VectorStore | None = None
    index: Any = None
    space = retriever.name if not needs_index else ""
    if needs_index:
        t = time.perf_counter()
        emb, index, space = session.corpus_index(data, retriever)
        timings["corpus_index"] = time.perf_counter() - t

    ctx = RunContext(task=data, corpus_embeddings=emb, index=index, seed=seed, device=session.device,
                     retrain=retrain, console=session.console)
    if index is not None:  # kind, factory string, nprobe / efSearch, rescore, placement (bench/index.py)
        ctx.extra["index"] = index.describe()
    t = time.perf_counter()
    retriever.prepare(ctx)
    timings["prepare"] = time.perf_counter() - t

    test = data.split(split)
    base = run_base(system, test, base_depth, ctx, timings, memo=session._queries)
    docs = documents_of(emb) if emb is not None else None  # the vector store: MMR gathers only candidate rows
    cands, rerank_records = apply_rerankers(system, base, test, docs, ctx, metrics, depth, seed, timings, base_depth)
    cands = cands.truncate(depth)
    ranking = cands.rows

    t = time.perf_counter()
    per_query = {str(m): m.compute(ranking, test.targets) for m in metrics}
    timings["metrics"] = time.perf_counter() - t
    if emb is not None:
        t = time.perf_counter()
        # Per-query target diversity in this run's document space (bench/diversity.py): `bench compare` bins by it.
        ctx.extra.setdefault(RECORD_KEY, run_record(test.targets, emb, space))
        timings["target_diversity"] = time.perf_counter() - t
    ctx.extra.setdefault("answers_per_query", [int(m) for m in test.targets.n_clusters])  # for compare's subsets
    if rerank_records:
        ctx.extra["rerank"] = rerank_records
    if system.expander is not None:
        ctx.extra.setdefault("expander", {"name": system.expander.name, **system.expander.info()})
    ctx.extra["query_cost"] = query_cost(base)
    timings["total"] = time.perf_counter() - t0

    task_meta, _ = TASKS.get(task_name)
    name = system.name
    config: dict[str, Any] = {
        "task": task_name, "task_params": params_dict(task.params), "retriever": retriever.name,
        "retriever_params": params_dict(retriever.params), "metrics": [str(m) for m in metrics], "seed": seed,
        "split": split,
    }
    if name != retriever.name:  # a plain retriever keeps the config (and hash) it had before systems existed
        config["system"] = name
        config["stages"] = system.stages_record()
    if needs_index and session.index != IndexSpec():  # an approximate index changes the numbers: part of the hash
        config["index"] = dataclasses.asdict(session.index)
    config_hash = stable_hash(config)
    now = time.time()
    run_id = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now)) + f"{int(now * 1000) % 1000:03d}Z-{config_hash[:8]}"
    result = RunResult(
        run_id=run_id,
        task=task_name,
        retriever=retriever.name,
        system=name,
        stages=system.stages_record(),
        ks=sorted({m.k for m in metrics}),
        query_ids=list(test.query_ids),
        per_query={n_: vals.tolist() for n_, vals in per_query.items()},
        summary={n_: float(vals.mean()) for n_, vals in per_query.items()},
        created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
        split=split,
        task_params=config["task_params"],
        retriever_params=config["retriever_params"],
        retriever_info={"kind": system.retriever_meta.kind, "doc_space": space, "m": base.m,
                        "produces": retriever.produces, **retriever.info()},
        task_info={"kind": task_meta.kind, "modality": data.modality, **data.info},
        seed=seed,
        config_hash=config_hash,
        corpus_size=len(data.corpus),
        data_hash=data.data_hash(),
        versions=package_versions(),
        timings={k: round(v, 4) for k, v in timings.items()},
        extra=ctx.extra,
    )
    path = save_run(result, results_dir, ranking=ranking, doc_ids=data.corpus.ids, scores=cands.scores)
    return result, path
