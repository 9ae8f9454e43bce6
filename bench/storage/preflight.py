"""Checks made before any work starts: can the results be written, is there disk for the results and the caches this
run will fill.

An unwritable `--results-dir` found after an hour of training is an hour lost; found first, it is one error line.
Every space check keeps MARGIN (64 MiB) free beyond its estimate and says so when it refuses. A disk that fills up
anyway, after the checks, ends the write in one line too (bench/storage/space.py).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from bench.errors import BenchError
from bench.storage.atomic import sweep_stale_temps
from bench.storage.cache import cache_root, cache_root_origin
from bench.storage.space import existing_parent, free_bytes, human_bytes

__all__ = ["MARGIN", "check_free_space", "check_writable", "human_bytes", "planned_cache_bytes",
           "planned_results_bytes", "preflight"]

MARGIN = 64 << 20  # free space kept beyond the estimate: manifests, temp copies, results files


def check_writable(folder: str | os.PathLike[str], what: str = "results folder") -> Path:
    """Raise one BenchError unless `folder` exists or can be created and a file can be written in it.

    Creates the folder (as the run would); a path under a regular file, or a read-only folder, is refused."""
    path = Path(folder)
    for parent in [path, *path.parents]:
        if parent.exists() and not parent.is_dir():
            raise BenchError(f"{what} {path}: {parent} is a file, not a folder")
        if parent.is_dir():
            break
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".bench-write-probe.", dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise BenchError(f"{what} {path} is not writable ({exc.strerror or exc})") from None
    return path


def check_free_space(folder: str | os.PathLike[str], need: int, what: str) -> None:
    """Raise one BenchError when the disk holding `folder` has less than `need` bytes plus MARGIN free; the message
    says both figures, so a refusal with more free than the estimate is not a puzzle."""
    probe = existing_parent(folder)
    free = free_bytes(probe)
    if free < need + MARGIN:
        raise BenchError(f"{what}: needs about {human_bytes(need)} on {probe}, plus the margin of {MARGIN >> 20} MiB "
                         f"a run keeps free ({human_bytes(need + MARGIN)} in all); only {human_bytes(free)} free")


def planned_cache_bytes(task: Any) -> int:
    """Bytes of cache entries this task will write that are not in the cache yet (0 when it cannot estimate)."""
    estimate = getattr(task, "planned_cache_bytes", None)
    return int(estimate()) if callable(estimate) else 0


def planned_results_bytes(n_queries: int, depth: int, n_metrics: int, n_systems: int = 1, id_bytes: int = 16) -> int:
    """About the bytes the results of `n_systems` runs take: per run a TREC file (a line per query and rank: two ids,
    rank, score, the system name) and a JSON record (per query its id and every metric's value, plus ~64 KB of
    config and provenance)."""
    trec = n_queries * depth * (2 * id_bytes + 48)
    record = n_queries * (id_bytes + 24 * (n_metrics + 4)) + (64 << 10)
    return n_systems * (trec + record)


def preflight(results_dir: str | os.PathLike[str], task: Any = None) -> None:
    """Everything a run can check before it loads data or trains: results folder and cache writable, disk free for
    the caches it will fill (where the task can estimate them); stale temp files of killed runs are removed."""
    check_writable(results_dir, "results folder")
    check_free_space(results_dir, 0, "the results folder")  # the margin alone; the results' size is checked once
    sweep_stale_temps(results_dir)                           # the task is loaded (bench/evaluate.py check)
    root = cache_root()
    check_writable(root, f"cache folder ({cache_root_origin()})")
    sweep_stale_temps(root)
    if task is not None:
        need = planned_cache_bytes(task)
        if need:
            check_free_space(root, need, f"the cache for task {getattr(task, 'name', '?')}")
