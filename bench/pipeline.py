"""One run, start to end: task → corpus embeddings → shared index → query vectors → search → merge → metrics → store."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console

from bench.cache import stable_hash
from bench.diversity import RECORD_KEY, run_record
from bench.errors import BenchError
from bench.fusion import round_robin_merge
from bench.index import FlatIndex, l2_normalise
from bench.metrics import Metric, default_metrics
from bench.params import params_dict, parse_params
from bench.progress import STDERR, make_progress
from bench.registry import RETRIEVERS, TASKS
from bench.results import RunResult, save_run
from bench.retriever import Retriever, RunContext
from bench.task import Task, TaskData
from bench.versions import package_versions

Params = Sequence[str] | Mapping[str, Any]


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


@dataclass
class Session:
    """Shares loaded tasks and corpus indexes between the runs of one command (one index per corpus × encoder)."""

    device: str = "auto"
    console: Console = field(default_factory=lambda: STDERR)
    _tasks: dict[str, TaskData] = field(default_factory=dict)
    _indexes: dict[str, tuple[np.ndarray, FlatIndex]] = field(default_factory=dict)

    def task_data(self, task: Task) -> TaskData:
        key = stable_hash([task.name, params_dict(task.params)])
        if key not in self._tasks:
            self._tasks[key] = task.load()
        return self._tasks[key]

    def corpus_index(self, data: TaskData, retriever: Retriever) -> tuple[np.ndarray, FlatIndex, str]:
        """The normalised corpus embeddings and their index for this retriever's document encoder."""
        encoder = retriever.document_encoder(data)
        if encoder is None:
            if data.corpus.vectors is None:
                raise BenchError(
                    f"retriever {retriever.name!r} has no document encoder, and task {data.name!r} is a text task"
                )
            space = "vectors"
        else:
            space = encoder.cache_key
        key = stable_hash([data.corpus.fingerprint, space])
        if key not in self._indexes:
            def embeddings() -> np.ndarray | Iterator[np.ndarray]:
                if encoder is None:
                    return l2_normalise(data.corpus.vectors)  # type: ignore[arg-type]
                shards = getattr(encoder, "encode_corpus_shards", None)
                if shards is not None:  # streaming encoders: the index is built shard by shard, one copy in memory
                    return shards(data.corpus)
                return l2_normalise(encoder.encode_corpus(data.corpus))

            index = FlatIndex.cached(key, embeddings, device=self.device)
            self._indexes[key] = (index.vectors(), index)
        emb, index = self._indexes[key]
        return emb, index, space


def search_and_merge(
    index: FlatIndex, query_vectors: np.ndarray, depth: int, console: Console | None = None
) -> np.ndarray:
    """Search each of the m vectors of every query to `depth`, merge the m lists round-robin: (n, depth) rows."""
    if query_vectors.ndim != 3:
        raise BenchError(f"query vectors must be (n_queries, m, d), got shape {query_vectors.shape}")
    n, m, d = query_vectors.shape
    flat = query_vectors.reshape(n * m, d)
    with make_progress(console) as progress:
        bar = progress.add_task("search", total=n * m, status=f"{n} queries × {m} vectors")
        _, rows = index.search(flat, depth, progress=lambda step: progress.advance(bar, step))
    return round_robin_merge(rows.reshape(n, m, depth), depth)


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
) -> tuple[RunResult, Path]:
    """Evaluate one retriever on one task and store the result atomically; returns it and its path."""
    session = session or Session()
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    task = build_task(task_name, task_params)
    retriever = build_retriever(retriever_name, retriever_params)
    metrics = list(metrics) if metrics else default_metrics(ks)
    depth = max(m.k for m in metrics)

    t = time.perf_counter()
    data = session.task_data(task)
    timings["load_task"] = time.perf_counter() - t

    t = time.perf_counter()
    emb, index, space = session.corpus_index(data, retriever)
    timings["corpus_index"] = time.perf_counter() - t

    ctx = RunContext(task=data, corpus_embeddings=emb, index=index, seed=seed, device=session.device,
                     retrain=retrain, console=session.console)
    t = time.perf_counter()
    retriever.prepare(ctx)
    timings["prepare"] = time.perf_counter() - t

    test = data.split(split)
    t = time.perf_counter()
    qvecs = np.asarray(retriever.encode_queries(test, ctx), dtype=np.float32)
    timings["encode_queries"] = time.perf_counter() - t
    if qvecs.ndim != 3 or qvecs.shape[0] != len(test) or qvecs.shape[2] != index.dim:
        raise BenchError(
            f"retriever {retriever_name!r} returned query vectors of shape {qvecs.shape}; "
            f"expected ({len(test)}, m, {index.dim})"
        )

    t = time.perf_counter()
    ranking = search_and_merge(index, qvecs, depth, session.console)
    timings["search"] = time.perf_counter() - t

    t = time.perf_counter()
    per_query = {str(m): m.compute(ranking, test.targets) for m in metrics}
    timings["metrics"] = time.perf_counter() - t
    t = time.perf_counter()
    # Per-query target diversity in this run's document space (bench/diversity.py): `bench compare` bins by it.
    ctx.extra.setdefault(RECORD_KEY, run_record(test.targets, emb, space))
    timings["target_diversity"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - t0

    task_meta, _ = TASKS.get(task_name)
    retr_meta, _ = RETRIEVERS.get(retriever_name)
    config: dict[str, Any] = {
        "task": task_name, "task_params": params_dict(task.params), "retriever": retriever_name,
        "retriever_params": params_dict(retriever.params), "metrics": [str(m) for m in metrics], "seed": seed,
        "split": split,
    }
    config_hash = stable_hash(config)
    now = time.time()
    run_id = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now)) + f"{int(now * 1000) % 1000:03d}Z-{config_hash[:8]}"
    result = RunResult(
        run_id=run_id,
        task=task_name,
        retriever=retriever_name,
        ks=sorted({m.k for m in metrics}),
        query_ids=list(test.query_ids),
        per_query={name: vals.tolist() for name, vals in per_query.items()},
        summary={name: float(vals.mean()) for name, vals in per_query.items()},
        created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
        split=split,
        task_params=config["task_params"],
        retriever_params=config["retriever_params"],
        retriever_info={"kind": retr_meta.kind, "doc_space": space, "m": int(qvecs.shape[1]), **retriever.info()},
        task_info={"kind": task_meta.kind, "modality": data.modality, **data.info},
        seed=seed,
        config_hash=config_hash,
        corpus_size=len(data.corpus),
        data_hash=data.data_hash(),
        versions=package_versions(),
        timings={k: round(v, 4) for k, v in timings.items()},
        extra=ctx.extra,
    )
    path = save_run(result, results_dir, ranking=ranking, doc_ids=data.corpus.ids)
    return result, path
