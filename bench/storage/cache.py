"""The on-disk cache: generated task data, embeddings, indexes, checkpoints, keyed by content hashes.

Root: $BENCH_CACHE_DIR, else $XDG_CACHE_HOME/multitarget-bench, else ~/.cache/multitarget-bench.

Cache entries (how to write one)
--------------------------------
An *entry* is one file or one folder in the cache. Write it through this module, never by hand:

    value = load_or_build(path, build=lambda tmp: write_the_entry_to(tmp), load=lambda p: read_the_entry(p))

- `build(tmp)` writes the entry to the temp path `tmp` (a file path, or an empty folder with `folder=True`); it is
  renamed to `path` only when `build` returns, so a crash or SIGKILL never leaves half an entry behind.
- Next to the entry goes `<name>.manifest.json`: size, an integrity check (sha256 of the whole file up to 64 MiB, else
  sha256 of 32 evenly spaced 64 KiB blocks plus the size), the producing package versions, and the run that wrote it
  (`recipe=`, given by the caller: a run's RunContext.recipe), which `bench cache verify --fix` replays to rebuild
  the entry; an entry that one task alone rebuilds says so in `info={"rebuild": {"task": ..., "task_params": ...}}`
  (the synthetic task files do).
- On read the entry is verified against its manifest, then `load(path)` is called. A missing, truncated or corrupt
  entry (or one `load` cannot read) is reported in one `warning:` line, moved to `<cache>/quarantine/`, and rebuilt.
- The build runs under a file lock (`filelock`, an OS `flock` released when the process dies), so a second process
  that wants the same entry waits and then reuses what the first built; a killed builder leaves no lock behind.
- An entry written before manifests existed is adopted: loaded once, and given a manifest when it loads.

`verify_entry(path)` returns a one-line problem or None; `write_entry(path, build)` writes an entry with its manifest
without loading it (embedding shards); `iter_entries()` lists every entry (what `bench cache verify` checks).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator, Mapping
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from bench.errors import BenchError, DamagedEntry
from bench.storage.atomic import atomic_dir, atomic_open, atomic_path, sweep_stale_temps

T = TypeVar("T")

MANIFEST_SUFFIX = ".manifest.json"
MANIFEST_FORMAT = 1
FULL_HASH_LIMIT = 64 << 20  # files up to this size get a full sha256, larger ones a sampled one
_SAMPLES = 32
_BLOCK = 64 << 10
QUARANTINE = "quarantine"
LOCKS = ".locks"
_BASE_PACKAGES = ("multitarget-bench", "numpy")

Recipe = Mapping[str, Any]  # the run that writes an entry (task, params, system, seed, ...), as plain JSON values


def cache_root() -> Path:
    env = os.environ.get("BENCH_CACHE_DIR")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg:
        return Path(xdg) / "multitarget-bench"
    try:
        home = Path.home()
    except RuntimeError:  # no $HOME and no password-database entry
        raise BenchError("no cache folder: $HOME is not set (and neither $BENCH_CACHE_DIR nor $XDG_CACHE_HOME); set "
                         "$BENCH_CACHE_DIR to a writable folder") from None
    return home / ".cache" / "multitarget-bench"


def cache_root_origin() -> str:
    """Where the cache root comes from, for messages about it: the variable that chose it, and how to choose another."""
    if os.environ.get("BENCH_CACHE_DIR"):
        return "$BENCH_CACHE_DIR"
    other = "set $BENCH_CACHE_DIR to use another folder"
    if os.environ.get("XDG_CACHE_HOME"):
        return f"under $XDG_CACHE_HOME; {other}"
    home = os.environ.get("HOME")
    return f"under $HOME={home}; {other}" if home else f"under your home folder; {other}"


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


# ------------------------------------------------------------------------------------------------ manifests


def manifest_path(path: str | os.PathLike[str]) -> Path:
    p = Path(path)
    return p.with_name(p.name + MANIFEST_SUFFIX)


def _lock_path(path: Path) -> Path:
    return path.parent / LOCKS / f"{path.name}.lock"


@functools.cache
def _version(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def producing_versions(packages: tuple[str, ...] = ()) -> dict[str, str]:
    """Versions of this harness, numpy and `packages` (those installed): recorded in each manifest."""
    out = {}
    for name in (*_BASE_PACKAGES, *packages):
        v = _version(name)
        if v is not None:
            out[name] = v
    return out


def plain_recipe(recipe: Recipe | None) -> dict[str, Any] | None:
    """A recipe as plain JSON values (dataclasses as dicts), as stored in a manifest."""
    if recipe is None:
        return None
    plain = {k: dataclasses.asdict(v) if dataclasses.is_dataclass(v) and not isinstance(v, type) else v
             for k, v in recipe.items()}
    return json.loads(json.dumps(plain, default=str))  # type: ignore[no-any-return]


def file_check(path: Path) -> dict[str, Any]:
    """Size and integrity check of one file: full sha256 up to FULL_HASH_LIMIT, sampled blocks above it."""
    size = path.stat().st_size
    if size <= FULL_HASH_LIMIT:
        return {"size": size, "sha256": file_sha256(path)}
    h = hashlib.sha256(str(size).encode())
    offsets = np.linspace(0, size - _BLOCK, _SAMPLES).astype(np.int64).tolist()
    with open(path, "rb") as fh:
        for off in offsets:
            fh.seek(off)
            h.update(fh.read(_BLOCK))
    return {"size": size, "sampled_sha256": h.hexdigest(), "blocks": _SAMPLES, "block_size": _BLOCK}


def _describe(path: Path) -> dict[str, Any]:
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file())
        return {"type": "dir", "files": {str(p.relative_to(path)): file_check(p) for p in files}}
    return {"type": "file", **file_check(path)}


def _make_manifest(path: Path, packages: tuple[str, ...], info: Mapping[str, Any] | None,
                   recipe: Recipe | None) -> dict[str, Any]:
    return {
        "format": MANIFEST_FORMAT, "entry": path.name, **_describe(path),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "versions": producing_versions(packages),
        "recipe": plain_recipe(recipe), "info": dict(info or {}),
    }


def _write_manifest(path: Path, manifest: dict[str, Any]) -> None:
    manifest = {**manifest, "entry": path.name}
    with atomic_open(manifest_path(path)) as fh:
        json.dump(manifest, fh, indent=1, sort_keys=True)
        fh.write("\n")


def read_manifest(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The entry's manifest, None when it has none; an unreadable manifest raises ValueError."""
    mp = manifest_path(path)
    try:
        data = json.loads(mp.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"manifest {mp.name} is not valid JSON ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT:
        raise ValueError(f"manifest {mp.name} is not a format-{MANIFEST_FORMAT} manifest")
    return data


def _check_file(path: Path, want: Mapping[str, Any], label: str) -> str | None:
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return f"{label} is missing"
    if size != want.get("size"):
        return f"{label} has {size} bytes, its manifest says {want.get('size')} (truncated or partial)"
    got = file_check(path)
    for field in ("sha256", "sampled_sha256"):
        if field in want and got.get(field) != want[field]:
            return f"{label}: {field} does not match its manifest (corrupt)"
    if "sha256" not in want and "sampled_sha256" not in want:
        return f"{label}: its manifest has no checksum"
    return None


def verify_entry(path: str | os.PathLike[str], require_manifest: bool = True) -> str | None:
    """None when the entry is intact, else a one-line description of the problem.

    Checks existence, then size and checksum of every file against the manifest. Without a manifest the entry is
    unverified: a problem when `require_manifest`, else None (the caller then proves it by loading it)."""
    p = Path(path)
    if not p.exists():
        return "missing"
    try:
        manifest = read_manifest(p)
    except ValueError as exc:
        return str(exc)
    if manifest is None:
        return "no manifest (written by an older version, or its writer was killed)" if require_manifest else None
    if manifest.get("type") == "dir":
        if not p.is_dir():
            return "expected a folder, found a file"
        files = manifest.get("files") or {}
        extra = sorted(str(f.relative_to(p)) for f in p.rglob("*") if f.is_file()) if p.is_dir() else []
        for rel, want in files.items():
            problem = _check_file(p / rel, want, rel)
            if problem:
                return problem
        unknown = sorted(set(extra) - set(files))
        return f"files not in its manifest: {', '.join(unknown[:3])}" if unknown else None
    if not p.is_file():
        return "expected a file, found a folder"
    problem = _check_file(p, manifest, "file")
    return None if problem and _revalidated(p, manifest) else problem


def revalidating(*fields: str) -> dict[str, Any]:
    """The manifest `info` of an entry whose content legitimately changes in place — a record keyed on a source
    file's path and rewritten when the file's size or mtime change (corpus scans, model fingerprints, an encode's
    meta.json): judged by its content (a JSON object with these fields), not by a checksum taken before the change."""
    return {"revalidate": {"json_fields": list(fields)}}


def _revalidated(p: Path, manifest: Mapping[str, Any]) -> bool:
    rule = (manifest.get("info") or {}).get("revalidate")
    if not isinstance(rule, dict):
        return False
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and all(f in data for f in rule.get("json_fields") or [])


def write_record(path: str | os.PathLike[str], record: Mapping[str, Any], *fields: str) -> Path:
    """Write a small JSON record that is rewritten in place as its source changes, as a cache entry: atomically,
    with a manifest that says to judge it by its content (`revalidating`), under the entry's lock."""
    def write(tmp: Path) -> None:
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(record, fh, indent=1, sort_keys=True)

    return write_entry(path, write, info=revalidating(*fields))


# ------------------------------------------------------------------------------------------------ quarantine


def quarantine_dir() -> Path:
    return cache_root() / QUARANTINE


def quarantine(path: str | os.PathLike[str]) -> Path | None:
    """Move an entry and its manifest out of the way, into `<cache>/quarantine/<kind>/` (or `<folder>/.quarantine/`
    for an entry outside the cache). Returns where the entry went (None when there was nothing to move)."""
    p = Path(path)
    root = cache_root()
    try:
        rel_parent = p.parent.resolve().relative_to(root.resolve())
        dest_dir = quarantine_dir() / rel_parent
    except ValueError:
        dest_dir = p.parent / ".quarantine"
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + f"-{os.getpid()}"
    dest_dir.mkdir(parents=True, exist_ok=True)
    moved: Path | None = None
    for src in (p, manifest_path(p)):
        if src.exists() or src.is_symlink():
            dest = dest_dir / f"{src.name}.{stamp}"
            os.replace(src, dest)
            if src == p:
                moved = dest
    return moved


def _warn(message: str) -> None:
    from bench.progress import warn

    warn(message)


def report_and_quarantine(path: Path, problem: str, what: str = "rebuilding it") -> Path | None:
    """The one warning line for a bad entry, and the entry moved aside."""
    dest = quarantine(path)
    where = f"moved to {dest}" if dest else "nothing to move"
    _warn(f"cache entry {path} is damaged: {problem}; {where}; {what}")
    return dest


# ------------------------------------------------------------------------------------------------ read / write


def write_entry(
    path: str | os.PathLike[str],
    build: Callable[[Path], object],  # writes the entry at the given temp path; its return value is ignored
    folder: bool = False,
    packages: tuple[str, ...] = (),
    info: Mapping[str, Any] | None = None,
    recipe: Recipe | None = None,
    need: int | None = None,
) -> Path:
    """Write an entry atomically with its manifest, under the entry's lock: `build(tmp)` fills a temp file (or
    folder). `need`: about the bytes it takes, named should the disk fill up."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with entry_lock(p):
        return _write_entry(p, build, folder, packages, info, recipe, need)


def _write_entry(p: Path, build: Callable[[Path], object], folder: bool, packages: tuple[str, ...],
                 info: Mapping[str, Any] | None, recipe: Recipe | None, need: int | None = None) -> Path:
    """The entry and its manifest, written by one step while its lock is held: the entry is renamed into place, then
    the manifest. Whoever takes the lock (a reader that found them disagreeing, `bench cache verify`) sees both or
    neither; a kill between the two renames leaves an entry without a manifest, which is proven by loading it."""
    writer = atomic_dir(p, need) if folder else atomic_path(p, need)
    with writer as tmp:
        build(tmp)
        manifest = _make_manifest(tmp, packages, info, recipe)
        if p.exists():  # replacing an entry: its old manifest must not vouch for the new content
            manifest_path(p).unlink(missing_ok=True)
    _write_manifest(p, manifest)
    return p


def adopt_entry(path: str | os.PathLike[str], packages: tuple[str, ...] = (), info: Mapping[str, Any] | None = None,
                recipe: Recipe | None = None) -> None:
    """Give an existing, already loaded entry (written before manifests) a manifest."""
    p = Path(path)
    _write_manifest(p, _make_manifest(p, packages, info, recipe))


def entry_lock(path: str | os.PathLike[str], timeout: float = -1):  # type: ignore[no-untyped-def]
    """The file lock that serialises builds of one entry (`with entry_lock(path): ...`)."""
    from filelock import FileLock

    lp = _lock_path(Path(path))
    lp.parent.mkdir(parents=True, exist_ok=True)
    return FileLock(str(lp), timeout=timeout)


def _try_load(path: Path, load: Callable[[Path], T]) -> tuple[bool, T | None, str]:
    try:
        return True, load(path), ""
    except DamagedEntry as exc:
        return False, None, str(exc)
    except (MemoryError, BenchError):  # not the file's fault (out of memory, a device asked for that is absent)
        raise
    except Exception as exc:  # any reader's failure on a cache file means the file is bad: heal, don't crash
        return False, None, f"unreadable ({type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc) else ''})"


def load_or_build(
    path: str | os.PathLike[str],
    build: Callable[[Path], object],  # writes the entry at the given temp path; its return value is ignored
    load: Callable[[Path], T],
    *,
    folder: bool = False,
    rebuild: bool = False,
    packages: tuple[str, ...] = (),
    info: Mapping[str, Any] | None = None,
    recipe: Recipe | None = None,
    on_build: Callable[[], None] | None = None,
) -> T:
    """Load the cache entry at `path`, or build it (under a file lock) and load what was built.

    - `build(tmp)` writes the entry to `tmp` (an empty folder when `folder=True`); `load(path)` reads it.
    - An entry that fails verification, or whose `load` raises DamagedEntry or any exception but BenchError and
      MemoryError, is reported in one warning line, quarantined and rebuilt. An entry with no manifest that loads
      is adopted.
    - `rebuild=True` builds even when a good entry exists (e.g. `--retrain`).
    - `packages`: extra package names whose versions the manifest records (e.g. "faiss-cpu", "torch").
    - `recipe`: the run writing the entry, for `bench cache verify --fix` (a run's RunContext.recipe).
    - `on_build()` is called just before a build starts (a progress line, a timer).
    """
    p = Path(path)
    if not rebuild:
        ok, value, _ = _load_if_intact(p, load, packages, info, recipe, under_lock=False)
        if ok:
            return value  # type: ignore[return-value]
    p.parent.mkdir(parents=True, exist_ok=True)
    with entry_lock(p):
        sweep_stale_temps(p.parent, recursive=False)
        if not rebuild:  # another process may have built it while we waited
            ok, value, problem = _load_if_intact(p, load, packages, info, recipe, under_lock=True)
            if ok:
                return value  # type: ignore[return-value]
            if problem:
                report_and_quarantine(p, problem)
        if on_build is not None:
            on_build()
        _write_entry(p, build, folder, packages, info, recipe)
        ok, value, problem = _try_load(p, load)
        if not ok:
            raise BenchError(f"cache entry {p} was just built but cannot be read back: {problem}")
        return value  # type: ignore[return-value]


def _load_if_intact(
    p: Path, load: Callable[[Path], T], packages: tuple[str, ...], info: Mapping[str, Any] | None,
    recipe: Recipe | None, under_lock: bool
) -> tuple[bool, T | None, str]:
    """(True, value, "") for an intact entry; (False, None, problem) for a damaged one, problem "" when absent.

    Without the lock a damaged-looking entry is only reported as absent: a writer may be between renaming the
    entry and writing its manifest, so the verdict is taken again under the lock before anything is moved."""
    if not p.exists():
        if under_lock and manifest_path(p).exists():
            manifest_path(p).unlink(missing_ok=True)  # a manifest whose entry is gone vouches for nothing
        return False, None, ""
    problem = verify_entry(p, require_manifest=False)
    if problem:
        return False, None, problem if under_lock else ""
    legacy = not manifest_path(p).exists()
    if legacy and not under_lock:
        return False, None, ""
    ok, value, problem = _try_load(p, load)
    if not ok:
        return False, None, problem if under_lock else ""
    if legacy:
        adopt_entry(p, packages, info, recipe)
    return True, value, ""


def iter_entries(root: Path | None = None) -> Iterator[Path]:
    """Every cache entry under the root: files and manifest-described folders, skipping manifests, locks, temp files,
    the quarantine, and files inside folder entries (embedding shard folders are walked: each shard is an entry)."""
    base = root or cache_root()
    if not base.is_dir():
        return
    for kind in sorted(base.iterdir()):
        if not kind.is_dir() or kind.name in (QUARANTINE, LOCKS) or kind.name.startswith("."):
            continue
        yield from _walk(kind)


def _walk(folder: Path) -> Iterator[Path]:
    for p in sorted(folder.iterdir()):
        if p.name.startswith(".") or p.name.endswith(MANIFEST_SUFFIX):
            continue
        if p.is_dir():
            try:
                described = (read_manifest(p) or {}).get("type") == "dir"
            except ValueError:
                described = True
            if described:
                yield p
            else:
                yield from _walk(p)
        else:
            yield p


# ------------------------------------------------------------------------------------------------ arrays


def save_arrays(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    with open(path, "wb") as fh:
        np.savez(fh, **dict(arrays))  # type: ignore[arg-type]


def load_arrays(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def load_or_build_arrays(
    folder: str, key: str, build: Callable[[], Mapping[str, np.ndarray]], required: tuple[str, ...] = (),
    info: Mapping[str, Any] | None = None, recipe: Recipe | None = None,
) -> dict[str, np.ndarray]:
    """Arrays cached as `<root>/<folder>/<key>.npz` (a verified entry); `build()` returns a dict of arrays on a miss.

    A stored file lacking one of the `required` arrays counts as damaged (moved aside and rebuilt)."""
    built: dict[str, dict[str, np.ndarray]] = {}

    def write(tmp: Path) -> None:
        built["arrays"] = dict(build())
        save_arrays(tmp, built["arrays"])

    def load(p: Path) -> dict[str, np.ndarray]:
        arrays = built["arrays"] if "arrays" in built else load_arrays(p)
        missing = [k for k in required if k not in arrays]
        if missing:
            raise DamagedEntry(f"{p}: field(s) {', '.join(missing)} missing")
        return arrays

    return load_or_build(cache_root() / folder / f"{key}.npz", write, load, info=info, recipe=recipe)


def remove_entry(path: str | os.PathLike[str]) -> None:
    """Delete an entry and its manifest (files or folder)."""
    p = Path(path)
    if p.is_dir():
        shutil.rmtree(p)
    else:
        p.unlink(missing_ok=True)
    manifest_path(p).unlink(missing_ok=True)
