"""Disk space: how much is free where a file will go, and the one error line for a write that ran out of it.

Every file the harness writes goes through bench.storage.atomic, which turns a write that fails on a full disk —
however the writer reports it: `OSError(ENOSPC)` from Python, `RuntimeError: basic_ios::clear: iostream error` from
`torch.save`, a SafetensorError, a FAISS write error — into `DiskFull`: one line naming the folder, the file and the
space it needs. The temp file is removed first, so a full disk never leaves a partial file, and a rerun resumes.
"""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bench.errors import BenchError

NEARLY_FULL = 1 << 20  # a write that fails with less than this free on its disk failed because the disk is full
_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


class DiskFull(BenchError, OSError):
    """A write that ran out of disk space: a BenchError (one line, exit 2) and an OSError with errno ENOSPC, so code
    that treats a failed optional write (a memo file) as harmless still does."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.errno = errno.ENOSPC  # (no strerror: str() stays the message, without an "[Errno 28]" prefix)


def human_bytes(n: float) -> str:
    """A byte count for people: `512 B`, `431.6 KB`, `2.0 MB`, … (powers of 1024)."""
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"


def existing_parent(path: str | os.PathLike[str]) -> Path:
    """`path` or its nearest existing parent: where the disk of a folder not made yet is measured."""
    p = Path(path)
    return next((q for q in [p, *p.parents] if q.exists()), Path("/"))


def free_bytes(path: str | os.PathLike[str]) -> int:
    """Bytes free (to this user) on the disk holding `path` (or its nearest existing parent)."""
    return int(shutil.disk_usage(existing_parent(path)).free)


def nbytes_of(obj: Any) -> int:
    """The bytes of the arrays and tensors inside nested dicts, lists and tuples: what saving them will take, about."""
    if isinstance(obj, Mapping):
        return sum(nbytes_of(v) for v in obj.values())
    if isinstance(obj, list | tuple):
        return sum(nbytes_of(v) for v in obj)
    size = getattr(obj, "nbytes", None)
    return int(size) if isinstance(size, int) else 0


def is_disk_full(exc: BaseException, folder: str | os.PathLike[str]) -> bool:
    """Whether a failed write into `folder` failed for want of space: ENOSPC / EDQUOT, or any error while the disk
    holding the folder has (nearly) nothing left — how `torch.save`, safetensors and FAISS report it. Call it before
    the partial temp file is removed."""
    if isinstance(exc, DiskFull):
        return True
    if isinstance(exc, OSError) and exc.errno in _FULL_ERRNOS:
        return True
    if not isinstance(exc, Exception) or isinstance(exc, BenchError):  # an interrupt, or the writer's own error
        return False
    try:
        return free_bytes(folder) < NEARLY_FULL
    except OSError:
        return False


def disk_full(target: str | os.PathLike[str], need: int | None, written: int = 0) -> DiskFull:
    """The one line for a write of `target` that found its disk full; `need` the bytes it needs (None: unknown, then
    at least what was `written` before the failure). Call it after the partial file is removed."""
    p = Path(target)
    folder = existing_parent(p.parent)
    try:
        free = human_bytes(free_bytes(folder))
    except OSError:
        free = "unknown"
    if need:
        size = f"needs about {human_bytes(need)}"
    elif written:
        size = f"needs more than the {human_bytes(written)} written before the disk filled"
    else:
        size = "needs more space than is left"
    return DiskFull(f"no space left on the disk holding {folder}: writing {p.name} {size}, {free} free; free some "
                    "space and run again (nothing partial was kept)")
