"""Checks made before any work starts: can the results be written, is there disk for the caches this run will fill.

An unwritable `--results-dir` found after an hour of training is an hour lost; found first, it is one error line.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from bench.errors import BenchError
from bench.storage.atomic import sweep_stale_temps
from bench.storage.cache import cache_root

MARGIN = 64 << 20  # free space kept beyond the estimate: manifests, temp copies, results files


def human_bytes(n: float) -> str:
    """A byte count for people: `512 B`, `431.6 KB`, `2.0 MB`, … (powers of 1024)."""
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"


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
    """Raise one BenchError when the disk holding `folder` has less than `need` bytes (plus a margin) free."""
    path = Path(folder)
    probe = next((p for p in [path, *path.parents] if p.exists()), Path("/"))
    free = shutil.disk_usage(probe).free
    if free < need + MARGIN:
        raise BenchError(f"{what}: needs about {human_bytes(need)} on {probe}, only {human_bytes(free)} free")


def planned_cache_bytes(task: Any) -> int:
    """Bytes of cache entries this task will write that are not in the cache yet (0 when it cannot estimate)."""
    estimate = getattr(task, "planned_cache_bytes", None)
    return int(estimate()) if callable(estimate) else 0


def preflight(results_dir: str | os.PathLike[str], task: Any = None) -> None:
    """Everything a run can check before it loads data or trains: results folder and cache writable, disk free for
    the caches it will fill (where the task can estimate them); stale temp files of killed runs are removed."""
    check_writable(results_dir, "results folder")
    sweep_stale_temps(results_dir)
    root = cache_root()
    check_writable(root, "cache folder ($BENCH_CACHE_DIR)")
    sweep_stale_temps(root)
    if task is not None:
        need = planned_cache_bytes(task)
        if need:
            check_free_space(root, need, f"the cache for task {getattr(task, 'name', '?')}")
