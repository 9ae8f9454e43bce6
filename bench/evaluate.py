"""Evaluating systems on a task, start to end — the one path every command (run, repro, check, cache replay) and the
Python API take:

    task + systems ──check once──▶ for each system: pipeline.run ──▶ RunResult.of_run ──▶ save_run (JSON + TREC)

`check` refuses, before any work, what cannot run (an unwritable results folder, a full disk, a cutoff larger than the
corpus, stages that do not fit the task); `evaluate` then runs one built system and stores its record; `evaluate_named`
does both from names, for one system.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bench.data.task import Task, TaskData, build_task
from bench.errors import BenchError
from bench.index.spec import check_trainable
from bench.metrics import Metric, check_cutoffs, default_metrics
from bench.params import Pairs, params_dict
from bench.progress import warn
from bench.results.record import RunResult, save_run
from bench.storage.preflight import check_free_space, planned_results_bytes, preflight
from bench.systems import pipeline
from bench.systems.build import System, build_system, check_system
from bench.systems.session import Session


def recipe(task: Task, system: System, metrics: Sequence[Metric], session: Session, seed: int,
           split: str) -> dict[str, Any]:
    """The run as `bench cache verify --fix` replays it: recorded in the manifest of every cache entry it writes."""
    return {"task": task.name, "task_params": params_dict(task.params), "retriever": system.name,
            "retriever_params": {}, "seed": seed, "split": split, "ks": sorted({m.k for m in metrics}),
            "index": params_dict(session.index),
            **({"replay": False} if system.retriever_meta.extra.get("in_process") else {})}  # an object: no name


def check(task: Task, systems: Sequence[System], metrics: Sequence[Metric], session: Session,
          results_dir: str | Path) -> TaskData:
    """Everything that can be refused before any work, once for all systems; returns the loaded task data."""
    preflight(results_dir, task)  # results folder and cache writable, disk for the caches (bench/storage)
    data = session.task_data(task)
    check_cutoffs(metrics, len(data.corpus), task.name)
    for system in systems:
        check_system(system, data)
    if any(system.retriever.produces == "vectors" for system in systems):
        check_trainable(session.index, len(data.corpus), f"the corpus of {task.name}")
    n_queries = max(len(split) for split in data.splits.values())
    check_free_space(results_dir, planned_results_bytes(n_queries, max(m.k for m in metrics), len(metrics),
                                                        len(systems)), f"the results of {len(systems)} run(s)")
    return data


def evaluate(task: Task, system: System, metrics: Sequence[Metric], session: Session, *, seed: int = 0,
             split: str = "test", retrain: bool = False, results_dir: str | Path = "results") -> tuple[RunResult, Path]:
    """Run one built system on the task (checked already: `check`) and store its record atomically; returns the
    record and the path of its JSON file. Under torchrun (`session.world`) every rank takes part in the run, rank 0
    alone writes the one record, and every rank returns it."""
    if seed < 0:
        raise BenchError(f"seed must be ≥ 0, got {seed}")
    t0 = time.perf_counter()
    data = session.task_data(task)
    load = time.perf_counter() - t0
    outcome = pipeline.run(system, data, split, metrics, session, seed=seed, retrain=retrain,
                           recipe=recipe(task, system, metrics, session, seed, split))
    stored: tuple[RunResult, Path] | None = None
    if outcome is not None:
        if all_scores_tied(outcome.candidates.scores):
            note = (f"system {system.name}: on every query of {task.name} ({split}) all retrieved documents have the "
                    "same score: the rankings are ties broken by corpus order, so these figures do not measure "
                    "retrieval")
            warn(note, session.console)
            outcome.extra.setdefault("warnings", []).append(note)
        timings = {"load_task": load, **outcome.timings, "total": time.perf_counter() - t0}
        record = RunResult.of_run(task, data, system, outcome, metrics, seed=seed, split=split, index=session.index,
                                  timings=timings)
        path = save_run(record, results_dir, ranking=outcome.candidates.rows, doc_ids=data.corpus.ids,
                        scores=outcome.candidates.scores)
        stored = (record, path)
    if session.world is not None:
        stored = session.world.share("record", stored, "writing the results")
    assert stored is not None
    return stored


def all_scores_tied(scores: np.ndarray) -> bool:
    """Whether every query that retrieved two or more documents scored them all alike (a degenerate run: an empty
    corpus, a constant encoder); queries with fewer real scores say nothing and are left out."""
    finite = np.isfinite(scores)
    ranked = finite.sum(axis=1) >= 2
    if not ranked.any():
        return False
    s = np.where(finite, scores, np.nan)[ranked]
    return bool(np.all(np.nanmax(s, axis=1) == np.nanmin(s, axis=1)))


def evaluate_named(task: str, system: str, ks: Sequence[int] = (10, 100), task_params: Pairs = (),
                   params: Pairs = (), *, seed: int = 0, split: str = "test", retrain: bool = False,
                   results_dir: str | Path = "results", session: Session | None = None,
                   metrics: Sequence[Metric] | None = None) -> tuple[RunResult, Path]:
    """`evaluate` from names: the task with `task_params`, the system (a retriever or a full system name) with the
    `params` pairs routed to its stages, MRECALL and Recall at `ks` unless `metrics` are given."""
    session = session or Session()
    task_obj = build_task(task, task_params)
    built = build_system(system, params)
    metrics = list(metrics) if metrics else default_metrics(ks)
    check(task_obj, [built], metrics, session, results_dir)
    return evaluate(task_obj, built, metrics, session, seed=seed, split=split, retrain=retrain,
                    results_dir=results_dir)
