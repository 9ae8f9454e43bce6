"""The on-disk cache: generated task data, embeddings, indexes, checkpoints, keyed by content hashes.

Root: $BENCH_CACHE_DIR, else $XDG_CACHE_HOME/multitarget-bench, else ~/.cache/multitarget-bench.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from bench.atomic import atomic_path


def cache_root() -> Path:
    env = os.environ.get("BENCH_CACHE_DIR")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "multitarget-bench"


def stable_hash(obj: Any, length: int = 16) -> str:
    """A short sha256 of a JSON-serialisable object with sorted keys: the same config gives the same key."""
    blob = json.dumps(obj, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:length]


def file_sha256(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def array_hash(*arrays: np.ndarray) -> str:
    """sha256 over the raw bytes, dtypes and shapes of arrays: the data hash recorded with a run."""
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(str((a.dtype.str, a.shape)).encode())
        h.update(a.data)
    return h.hexdigest()


def load_or_build_arrays(folder: str, key: str, build: Any) -> dict[str, np.ndarray]:
    """Arrays cached as `<root>/<folder>/<key>.npz`; `build()` returns a dict of arrays on a miss."""
    path = cache_root() / folder / f"{key}.npz"
    if path.exists():
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    arrays = build()
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
    return arrays
