"""Atomic file writes: write to a temp file in the target folder, fsync, then rename over the target.

An interrupted run (SIGINT, crash) leaves either the old file or the new one, never a partial one; the temp file is
removed on any exception, KeyboardInterrupt included. A SIGKILL cannot run that clean-up, so a temp file's name
carries its writer's process id (`.<name>.<pid>.<random>.tmp`) and `sweep_stale_temps` removes the ones whose writer
is gone. Written files get the mode the user's umask gives a new file (0666 & ~umask), like `open()` would, not the
0600 of `mkstemp`. A write that fails because the disk is full is one BenchError naming the folder and the space
needed (bench/storage/space.py), raised after the temp file is removed.
"""

from __future__ import annotations

import contextlib
import fnmatch
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from bench.storage.space import DiskFull, disk_full, is_disk_full

_TEMP = re.compile(r"^\..+\.(?P<pid>\d+)\.[^.]+\.tmp$")


def current_umask() -> int:
    """The process umask, read without changing it (Linux: /proc/self/status), else by setting and restoring it."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def file_mode() -> int:
    """The mode `open()` gives a new file under the current umask."""
    return 0o666 & ~current_umask()


def dir_mode() -> int:
    """The mode `mkdir()` gives a new folder under the current umask."""
    return 0o777 & ~current_umask()


def _fault_point(target: Path) -> None:
    """Fault injection for tests/e2e/test_faults.py: with BENCH_FAULT_KILL=<glob> in the environment, a process SIGKILLs
    itself when it is about to rename a written temp file onto a target whose name matches <glob> (e.g. `*.faiss`) —
    the moment a non-atomic writer would leave a partial file. Inert when the variable is unset."""
    pattern = os.environ.get("BENCH_FAULT_KILL")
    if pattern and fnmatch.fnmatchcase(target.name, pattern):
        import signal

        os.kill(os.getpid(), signal.SIGKILL)


def _fault_fill(target: Path) -> None:
    """Fault injection for the disk-full tests: with BENCH_FAULT_FILL=<glob>, a process about to write a target whose
    name matches <glob> first fills the disk holding it (a file `.bench-fault-fill` beside it, at most 1 GiB: the
    tests fill a small tmpfs), as another program might; the write then meets a real full disk. Inert when the
    variable is unset."""
    pattern = os.environ.get("BENCH_FAULT_FILL")
    if not pattern or not fnmatch.fnmatchcase(target.name, pattern):
        return
    block = b"\0" * (1 << 16)
    try:
        with open(target.parent / ".bench-fault-fill", "ab") as fh:
            for _ in range((1 << 30) // len(block)):
                fh.write(block)
                fh.flush()
    except OSError:
        pass



def _temp_prefix(target: Path) -> str:
    return f".{target.name}.{os.getpid()}."


def _size(path: Path) -> int:
    try:
        if path.is_dir():
            return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
        return path.stat().st_size
    except OSError:
        return 0


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], need: int | None = None) -> Iterator[Path]:
    """Yield a temp path next to `path`; on success it is renamed to `path`, on failure deleted. `need`: about how
    many bytes the file will take, named in the error should the disk fill up."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    _fault_fill(target)
    try:
        fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(target), suffix=".tmp", dir=target.parent)
    except OSError as exc:
        if is_disk_full(exc, target.parent):
            raise disk_full(target, need) from None
        raise
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        _fault_point(target)
        os.chmod(tmp_path, file_mode())  # mkstemp's 0600 would survive the rename
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp_path, target)
    except BaseException as exc:
        full, written = is_disk_full(exc, target.parent), _size(tmp_path)
        tmp_path.unlink(missing_ok=True)
        if full and not isinstance(exc, DiskFull):
            raise disk_full(target, need, written) from None
        raise


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike[str], need: int | None = None) -> Iterator[Path]:
    """Yield a temp folder next to `path`; on success it replaces `path` (an existing folder is removed first)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    _fault_fill(target)
    try:
        tmp_path = Path(tempfile.mkdtemp(prefix=_temp_prefix(target), suffix=".tmp", dir=target.parent))
    except OSError as exc:
        if is_disk_full(exc, target.parent):
            raise disk_full(target, need) from None
        raise
    try:
        yield tmp_path
        _fault_point(target)
        for p in [tmp_path, *tmp_path.rglob("*")]:
            os.chmod(p, dir_mode() if p.is_dir() else file_mode())
        if target.is_dir():
            shutil.rmtree(target)
        os.replace(tmp_path, target)
    except BaseException as exc:
        full, written = is_disk_full(exc, target.parent), _size(tmp_path)
        shutil.rmtree(tmp_path, ignore_errors=True)
        if full and not isinstance(exc, DiskFull):
            raise disk_full(target, need, written) from None
        raise


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "w", encoding: str | None = "utf-8",
                need: int | None = None) -> Iterator[IO]:
    """Open a temp file for writing that replaces `path` only when the block finishes without error."""
    with atomic_path(path, need) as tmp:
        with open(tmp, mode, encoding=None if "b" in mode else encoding) as fh:
            yield fh


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def sweep_stale_temps(folder: str | os.PathLike[str], recursive: bool = True) -> list[Path]:
    """Remove temp files (and folders) left in `folder` by writers that were killed; returns what was removed.

    Only names of the form `.<name>.<pid>.<random>.tmp` whose pid is no longer running are touched, so a write in
    progress in another process is left alone."""
    root = Path(folder)
    if not root.is_dir():
        return []
    removed: list[Path] = []
    candidates = root.rglob(".*.tmp") if recursive else root.glob(".*.tmp")
    for p in list(candidates):
        m = _TEMP.match(p.name)
        if not m or _alive(int(m["pid"])):
            continue
        try:
            if p.is_dir():
                shutil.rmtree(p)
            else:
                p.unlink()
            removed.append(p)
        except FileNotFoundError:
            continue
    return removed
