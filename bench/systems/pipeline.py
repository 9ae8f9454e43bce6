"""Running one built system on one split of a task's data, as a pipeline of stages (bench/systems/stages.py):

    [expander] → retriever: query vectors → search every vector (scores kept)   ┐
                 or its own scored lists (bm25)                                 ├→ fuser → [re-rankers] → metrics
                                                                                ┘

`run` takes a built System (bench/systems/build.py) and loaded TaskData; what a command checks before any work
(cutoffs, stages that fit the task, folders, disk) is checked by the command, once. The result record is built from
the returned Outcome by bench/results/record.py.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from rich.console import Console

from bench.data.task import Split, TaskData
from bench.distributed import World, set_phase
from bench.errors import BenchError
from bench.index import Index, VectorStore
from bench.metrics import Metric, parse_metric
from bench.metrics.diversity import RECORD_KEY, run_record
from bench.progress import make_progress
from bench.storage.cache import Recipe
from bench.systems.build import System, build_system
from bench.systems.context import RunContext
from bench.systems.records import Candidates, DocumentVectors, PerVectorLists, QueryVectors, documents_of
from bench.systems.retriever import RankingRetriever, VectorRetriever
from bench.systems.session import Session
from bench.systems.stages import Expander, Fuser, Reranker, TuningData

VALIDATION_NAMES = ("validation", "dev", "val")
VALIDATION_SAMPLE = 500  # train queries drawn (seeded) to tune a re-ranker when the task has no validation split


# ------------------------------------------------------------------------------------------------------------- search
def search_lists(index: Index, queries: QueryVectors, depth: int, console: Console | None = None) -> PerVectorLists:
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


def fuse(lists: PerVectorLists, fuser: Fuser | None, depth: int, system: str) -> Candidates:
    """One list per query. Queries with one list keep it, with its own scores, unless a fuser was asked for."""
    counts = lists.mask.sum(axis=1)
    if fuser is None:
        if int(counts.max(initial=0)) <= 1:
            first = np.argmax(lists.mask, axis=1)
            idx = np.arange(lists.shape[0])
            return Candidates(lists.rows[idx, first, :depth], lists.scores[idx, first, :depth])
        from bench.systems.fusion.round_robin import round_robin  # the default fuser (bench/systems/names.py)

        return round_robin(lists, depth).check("fuser round-robin")
    if int(counts.max(initial=0)) <= 1:
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

    def cost(self) -> dict[str, float | None]:
        """What answering one query costs on the query side, as `bench compare` reports it: the mean number of
        searches (query vectors or expanded texts searched; AMER's emitted vectors) and of LLM calls per query."""
        n = len(self.searches)
        return {"searches_per_query": round(float(self.searches.mean()), 4) if n else None,
                "llm_calls_per_query": round(self.llm_calls / n, 4) if n else None}


def run_base(system: System, split: Split, depth: int, ctx: RunContext, timings: dict[str, float],
             prefix: str = "", memo: dict[str, QueryVectors] | None = None, memo_key: str | None = None,
             expander: Expander | None = None) -> BaseOutput:
    """Expansion → retrieval (vectors + search, or the retriever's own ranking) → fusion, for one split.
    `expander` replaces the system's own (None: the system's); `memo` keeps a stateless encoder's query vectors."""
    expander = expander or system.expander
    texts, owner = _expand(expander, split, ctx, timings, prefix)
    queries: QueryVectors | None = None
    t = time.perf_counter()
    if isinstance(system.retriever, RankingRetriever):
        lists = _rank(system.retriever, split, texts, owner, depth, ctx, slice(None))
        timings[prefix + "search"] = time.perf_counter() - t
    else:
        queries = _query_vectors(system, split, texts, owner, ctx, memo, memo_key)
        timings[prefix + "encode_queries"] = time.perf_counter() - t
        assert ctx.index is not None
        t = time.perf_counter()
        lists = search_lists(ctx.index, queries, depth, ctx.console)
        timings[prefix + "search"] = time.perf_counter() - t
    return _fused(system, expander, split, lists, queries, depth, timings, prefix)


def run_base_shared(system: System, split: Split, depth: int, ctx: RunContext, timings: dict[str, float],
                    world: World, memo: dict[str, QueryVectors] | None = None,
                    memo_key: str | None = None) -> BaseOutput | None:
    """`run_base` across the ranks of a torchrun job (bench/distributed.py): rank 0 expands the queries and encodes
    them, every rank searches its contiguous share of the queries against the whole index (a ranking retriever ranks
    its share), and rank 0 gathers the lists and fuses them. Returns None on the other ranks."""
    expander = system.expander
    texts, owner = None, None
    if expander is not None:  # LLM calls and their cache: rank 0 alone
        expanded = _expand(expander, split, ctx, timings, "") if world.is_main else None
        texts, owner = world.share("expansions", expanded, "expanding the queries")
    queries: QueryVectors | None = None
    t = time.perf_counter()
    if isinstance(system.retriever, RankingRetriever):
        n = len(texts) if texts is not None else len(split)
        part = world.part(n)
        set_phase(world, f"ranking queries {part.start}–{part.stop - 1} with {system.retriever.name}")
        mine = _rank(system.retriever, split, texts, owner, depth, ctx, part)
        lists_parts = world.gather("ranked", mine, "ranking its share of the queries")
        timings["search"] = time.perf_counter() - t
    else:
        if world.is_main:
            queries = _query_vectors(system, split, texts, owner, ctx, memo, memo_key)
        queries = world.share("query-vectors", queries, "encoding the queries")
        timings["encode_queries"] = time.perf_counter() - t
        assert ctx.index is not None and queries is not None
        t = time.perf_counter()
        part = world.part(queries.shape[0])
        set_phase(world, f"searching queries {part.start}–{part.stop - 1}")
        mine = search_lists(ctx.index, QueryVectors(queries.vectors[part], queries.mask[part]), depth,
                            ctx.console if world.is_main else None)
        lists_parts = world.gather("searched", mine, "searching its share of the queries")
        timings["search"] = time.perf_counter() - t
    if lists_parts is None:
        return None
    lists = PerVectorLists(np.concatenate([p.rows for p in lists_parts]),
                           np.concatenate([p.scores for p in lists_parts]),
                           np.concatenate([p.mask for p in lists_parts]))
    if isinstance(system.retriever, RankingRetriever) and texts is not None and owner is not None:
        lists = PerVectorLists.from_flat(Candidates(lists.rows[:, 0], lists.scores[:, 0]), owner, len(split))
    return _fused(system, expander, split, lists, queries, depth, timings, "")


def _expand(expander: Expander | None, split: Split, ctx: RunContext, timings: dict[str, float],
            prefix: str) -> tuple[list[str] | None, np.ndarray | None]:
    """The expanded query texts, flat, and the query each belongs to (None, None without an expander)."""
    if expander is None:
        return None, None
    n = len(split)
    if split.texts is None:
        raise BenchError(f"expander {expander.name!r} rewrites query texts; task {ctx.task.name!r} has "
                         "vector queries")
    t = time.perf_counter()
    expanded = expander.expand(list(split.texts), split, ctx)
    timings[prefix + "expand"] = time.perf_counter() - t
    if len(expanded) != n or any(not e for e in expanded):
        raise BenchError(f"expander {expander.name!r} must return one non-empty list of texts per query "
                         f"({n} queries, got {len(expanded)} lists)")
    texts = [str(x) for group in expanded for x in group]
    return texts, np.repeat(np.arange(n), [len(g) for g in expanded])


def _rank(retriever: RankingRetriever, split: Split, texts: list[str] | None, owner: np.ndarray | None, depth: int,
          ctx: RunContext, part: slice) -> PerVectorLists:
    """A ranking retriever's lists for the queries (or expanded texts) in `part`, as PerVectorLists of those queries
    (of all queries when `part` covers them; for expanded texts, grouped by query once gathered)."""
    idx = np.arange(len(texts) if texts is not None else len(split))[part]
    if not len(idx):  # more ranks than queries: this rank has none
        empty = np.zeros((0, 1, depth))
        return PerVectorLists(empty.astype(np.int64) - 1, empty.astype(np.float32) - np.inf, np.zeros((0, 1), bool))
    if texts is not None and owner is not None:
        cands = retriever.rank_texts(texts[part], depth, ctx).check(retriever.name)
        if part == slice(None):
            return PerVectorLists.from_flat(cands, owner, len(split))
        return PerVectorLists.single(cands)  # one list per text: regrouped by query on rank 0
    sub = split if len(idx) == len(split) else split.subset(idx)
    return PerVectorLists.single(retriever.rank(sub, depth, ctx).check(retriever.name))


def _query_vectors(system: System, split: Split, texts: list[str] | None, owner: np.ndarray | None, ctx: RunContext,
                   memo: dict[str, QueryVectors] | None, memo_key: str | None) -> QueryVectors:
    """The retriever's query vectors (of the expanded texts when there are any), checked against the index."""
    retriever, n = system.retriever, len(split)
    assert isinstance(retriever, VectorRetriever) and ctx.index is not None
    if texts is not None and owner is not None:
        queries = QueryVectors.from_flat(retriever.encode_texts(texts, ctx), owner, n)
    elif memo is not None and memo_key is not None and memo_key in memo:
        queries = memo[memo_key]
    else:
        out = retriever.encode_queries(split, ctx)
        queries = out if isinstance(out, QueryVectors) else QueryVectors.dense(np.asarray(out, dtype=np.float32))
        if memo is not None and memo_key is not None:
            memo[memo_key] = queries
    if queries.vectors.ndim != 3 or queries.shape[0] != n or queries.shape[2] != ctx.index.dim:
        raise BenchError(
            f"retriever {retriever.name!r} returned query vectors of shape {queries.vectors.shape}; "
            f"expected ({n}, m, {ctx.index.dim})"
        )
    return queries


def _fused(system: System, expander: Expander | None, split: Split, lists: PerVectorLists,
           queries: QueryVectors | None, depth: int, timings: dict[str, float], prefix: str) -> BaseOutput:
    t = time.perf_counter()
    cands = fuse(lists, system.fuser, depth, system.name)
    timings[prefix + "fuse"] = time.perf_counter() - t
    searches = lists.mask.sum(axis=1)
    calls = expander.llm_calls(split) if expander is not None else 0
    return BaseOutput(cands, queries, searches, calls)


# ---------------------------------------------------------------------------------------------------- re-ranking
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


def apply_rerankers(system: System, base: BaseOutput, split: Split, docs: DocumentVectors | None, ctx: RunContext,
                    metrics: Sequence[Metric], depth: int, seed: int, timings: dict[str, float],
                    base_depth: int) -> tuple[Candidates, list[dict[str, Any]]]:
    """Tune each re-ranker on validation data (or by 2-fold cross-fitting on `split`), then apply it. The last
    re-ranker keeps the run's `depth`, the others every candidate."""
    cands = base.candidates
    records: list[dict[str, Any]] = []
    if not system.rerankers:
        return cands, records
    cutoffs = [m.k for m in metrics]
    val, val_name = validation_split(ctx.task, split.name, seed)
    val_base: BaseOutput | None = None
    if val is not None and any(_tunes(r) for r in system.rerankers):
        val_base = run_base(system, val, base_depth, ctx, timings, prefix="validation_")
    for i, reranker in enumerate(system.rerankers):
        keep = depth if i == len(system.rerankers) - 1 else None
        metric = parse_metric(reranker.tuning_metric(cutoffs))
        t = time.perf_counter()
        rec: dict[str, Any] = {"name": reranker.name}
        if not _tunes(reranker):
            cands = reranker.rerank(cands, base.queries, docs, ctx, keep).check(f"reranker {reranker.name}")
            if val_base is not None:  # a later re-ranker tunes on what this one made of the validation queries
                val_base = dataclasses.replace(
                    val_base, candidates=reranker.rerank(val_base.candidates, val_base.queries, docs, ctx, keep))
        elif val is not None and val_base is not None:
            data = _tuning_data(val, val_base.candidates, val_base.queries, metric)
            rec["tuning"] = {"split": val_name, "queries": len(val), **reranker.tune(data, docs, ctx, keep)}
            cands = reranker.rerank(cands, base.queries, docs, ctx, keep).check(f"reranker {reranker.name}")
            val_base = dataclasses.replace(
                val_base, candidates=reranker.rerank(val_base.candidates, val_base.queries, docs, ctx, keep))
        else:
            cands, folds = _cross_fit(reranker, cands, base.queries, split, docs, ctx, metric, seed, keep)
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
               docs: DocumentVectors | None, ctx: RunContext, metric: Metric, seed: int,
               keep: int | None) -> tuple[Candidates, list[dict[str, Any]]]:
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
        record = reranker.tune(_tuning_data(sub, sub_cands, _subset_queries(queries, tune_idx), metric), docs, ctx,
                               keep)
        folds.append({"tuned_on": len(tune_idx), "applied_to": len(apply_idx), **record})
        part = reranker.rerank(Candidates(cands.rows[apply_idx], cands.scores[apply_idx]),
                               _subset_queries(queries, apply_idx), docs, ctx, keep).check(f"reranker {reranker.name}")
        if out_rows is None:
            out_rows = np.full((n, part.k), -1, dtype=np.int64)
            out_scores = np.full((n, part.k), -np.inf, dtype=np.float32)
        out_rows[apply_idx], out_scores[apply_idx] = part.rows, part.scores  # type: ignore[index]
    assert out_rows is not None and out_scores is not None
    return Candidates(out_rows, out_scores), folds


# --------------------------------------------------------------------------------------------------------------- run
@dataclass
class Outcome:
    """What running one system on one split produced: the final ranking (cut to the run's depth) with its scores,
    per-query metric values, the base stages' output, the document space, what the stages recorded, timings."""

    candidates: Candidates
    per_query: dict[str, np.ndarray]
    base: BaseOutput
    doc_space: str
    extra: dict[str, Any]
    timings: dict[str, float] = field(default_factory=dict)


class _Services:
    """What the pipeline offers a stage (bench.systems.context.Services): another plain system's retrieval on the
    run's task, built and prepared once per name."""

    def __init__(self, session: Session, ctx: RunContext) -> None:
        self.session = session
        self.ctx = ctx
        self._systems: dict[str, tuple[System, RunContext]] = {}

    def retrieve(self, system: str, split: Split, depth: int, expansions: list[list[str]] | None = None
                 ) -> Candidates:
        if system not in self._systems:
            built = build_system(system)
            if built.expander is not None or built.rerankers:
                raise BenchError(f"{system!r} must be a plain retriever (no expander or re-ranker) here")
            ctx = dataclasses.replace(self.ctx, corpus_embeddings=None, index=None, retrain=False, extra={})
            if isinstance(built.retriever, VectorRetriever):
                ctx.corpus_embeddings, ctx.index, _ = self.session.corpus_index(  # rank 0 alone, under torchrun
                    self.ctx.task, built.retriever, self.ctx.recipe, shared=False)
            built.retriever.prepare(ctx)
            self._systems[system] = (built, ctx)
        built, ctx = self._systems[system]
        fixed = _Fixed(expansions) if expansions is not None else None
        return run_base(built, split, depth, ctx, {}, expander=fixed).candidates


class _Fixed(Expander):
    """Hands `run_base` expansions computed already (one list of texts per query)."""

    def __init__(self, texts: list[list[str]]) -> None:
        super().__init__(None, "fixed")
        self.texts = texts

    def expand(self, texts: list[str], split: Split, ctx: RunContext) -> list[list[str]]:
        return self.texts


def run(system: System, data: TaskData, split: str, metrics: Sequence[Metric], session: Session, *, seed: int = 0,
        retrain: bool = False, recipe: Recipe | None = None) -> Outcome | None:
    """Run a built system on `split` of `data` and score it with `metrics` (their largest cutoff is the depth).

    Under torchrun (`session.world`) every rank takes part in encoding the corpus and searching (`run_base_shared`);
    rank 0 alone fuses, re-ranks and scores, and the other ranks return None."""
    timings: dict[str, float] = {}
    retriever = system.retriever
    depth = max(m.k for m in metrics)
    base_depth = max([depth] + [int(getattr(r, "depth", depth)) for r in system.rerankers])
    emb: VectorStore | None = None
    index: Index | None = None
    space = retriever.name
    if isinstance(retriever, VectorRetriever):
        t = time.perf_counter()
        emb, index, space = session.corpus_index(data, retriever, recipe)
        timings["corpus_index"] = time.perf_counter() - t
    ctx = RunContext(task=data, corpus_embeddings=emb, index=index, seed=seed, device=session.device,
                     retrain=retrain, console=session.console, recipe=recipe)
    ctx.services = _Services(session, ctx)
    if index is not None:  # kind, factory string, nprobe / efSearch, rescore, placement (bench/index)
        ctx.extra["index"] = index.describe()
    world = session.world
    t = time.perf_counter()
    if world is not None and isinstance(retriever, RankingRetriever):  # its index is built once, by rank 0
        set_phase(world, f"preparing {retriever.name}")
        with world.rank_zero_first(f"prepare/{retriever.name}", f"preparing {retriever.name}"):
            retriever.prepare(ctx)
    else:  # a trainable retriever trains on every rank at once (DDP, bench/train/strategy.py)
        retriever.prepare(ctx)
    timings["prepare"] = time.perf_counter() - t

    test = data.split(split)
    stateless = system.retriever_meta.kind == "dense"  # no training, no side effects: query vectors can be shared
    memo = session.queries if stateless else None
    memo_key = session.memo_key(retriever, test.fingerprint()) if stateless else None
    if world is None:
        base = run_base(system, test, base_depth, ctx, timings, memo=memo, memo_key=memo_key)
    else:
        shared = run_base_shared(system, test, base_depth, ctx, timings, world, memo=memo, memo_key=memo_key)
        if shared is None:
            return None
        base = shared
        ctx.extra["distributed"] = {"processes": world.size,
                                    "split": "corpus shards round-robin over ranks; queries in contiguous parts"}
    docs = documents_of(emb) if emb is not None else None  # the vector store: MMR gathers only candidate rows
    cands, rerank_records = apply_rerankers(system, base, test, docs, ctx, metrics, depth, seed, timings, base_depth)
    cands = cands.truncate(depth)

    t = time.perf_counter()
    per_query = {str(m): m.compute(cands.rows, test.targets) for m in metrics}
    timings["metrics"] = time.perf_counter() - t
    if emb is not None:
        t = time.perf_counter()
        # Per-query target diversity in this run's document space (bench/metrics/diversity.py): compare bins by it.
        ctx.extra.setdefault(RECORD_KEY, run_record(test.targets, emb, space))
        timings["target_diversity"] = time.perf_counter() - t
    ctx.extra.setdefault("answers_per_query", [int(m) for m in test.targets.n_clusters])  # for compare's subsets
    if rerank_records:
        ctx.extra["rerank"] = rerank_records
    if system.expander is not None:
        ctx.extra.setdefault("expander", {"name": system.expander.name, **system.expander.info()})
    ctx.extra["query_cost"] = base.cost()
    return Outcome(cands, per_query, base, space, ctx.extra, timings)
