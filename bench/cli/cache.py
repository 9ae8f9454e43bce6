"""`bench cache ls`, `bench cache verify [--fix]` and `bench cache clear`: what the on-disk cache holds, whether every
entry is intact (and rebuilding the damaged ones), and removing it."""

from __future__ import annotations

import contextlib
import json
import shutil
import time
from pathlib import Path

import click
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from bench.cli.app import app
from bench.cli.output import print_whole
from bench.errors import BenchError
from bench.storage.cache import (
    LOCKS,
    MANIFEST_SUFFIX,
    QUARANTINE,
    adopt_entry,
    cache_root,
    entry_lock,
    iter_entries,
    manifest_path,
    quarantine,
    read_manifest,
    verify_entry,
)
from bench.storage.preflight import human_bytes

out = Console()
cache_app = typer.Typer(help="Inspect or clear the cache (embeddings, indexes, generated data, checkpoints).",
                        no_args_is_help=True)
app.add_typer(cache_app, name="cache")


def _size(path: Path) -> int:
    if path.is_file():
        extra = manifest_path(path).stat().st_size if manifest_path(path).is_file() else 0
        return path.stat().st_size + extra
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _hidden(path: Path) -> bool:
    """Manifests (counted with their entry), locks and temp files are not entries of their own."""
    return path.name.startswith(".") or path.name.endswith(MANIFEST_SUFFIX) or path.name == LOCKS


def _when(path: Path) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(path.stat().st_mtime))


def _embedding_detail(folder: Path) -> str:
    try:
        meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "no meta.json"
    n, size = int(meta.get("n_docs", 0)), int(meta.get("shard_size", 1) or 1)
    total = (n + size - 1) // size
    done = len(list(folder.glob("shard-*.npy")))
    desc = meta.get("describe") or {}
    corpus = (desc.get("corpus") or {}).get("path", desc.get("corpus_fingerprint", "?"))
    state = "complete" if meta.get("complete") else f"partial {done}/{total} shards"
    return f"{desc.get('model_id', '?')} · {n} docs × {meta.get('dim') or '?'} · {state} · {corpus}"


@cache_app.command("ls")
def ls(
    kind: list[str] = typer.Argument(None, help="only these kinds (folders of the cache), e.g. embeddings indexes"),
    entries: bool = typer.Option(True, "--entries/--summary", help="list every entry, or only the totals per kind"),
) -> None:
    """List the cache's contents: one row per entry, with its size and what it holds."""
    root = cache_root()
    if not root.is_dir():
        out.print(f"cache {escape(str(root))} is empty", highlight=False, soft_wrap=True)
        return
    kinds = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if kind:
        unknown = set(kind) - {p.name for p in kinds}
        if unknown:
            have = ", ".join(p.name for p in kinds)
            raise BenchError(f"no {', '.join(sorted(unknown))} in cache {root}; it has {have}")
        kinds = [p for p in kinds if p.name in kind]
    table = Table(title=f"cache {escape(str(root))}")
    for col in ("kind", "entry", "size", "modified", "holds"):
        table.add_column(col, overflow="fold", justify="right" if col == "size" else "left")
    total = 0
    for folder in kinds:
        items = sorted(p for p in folder.iterdir() if not _hidden(p))
        size = sum(_size(p) for p in items)
        total += size
        if not entries:
            table.add_row(escape(folder.name), f"{len(items)} entries", human_bytes(size), "", "")
            continue
        for item in items:
            holds = _embedding_detail(item) if folder.name == "embeddings" and item.is_dir() else ""
            table.add_row(escape(folder.name), escape(item.name), human_bytes(_size(item)), _when(item), escape(holds))
    print_whole(out, table)
    out.print(f"total {human_bytes(total)}", highlight=False)


@cache_app.command("clear")
def clear(
    kind: list[str] = typer.Argument(None, help="kinds to remove, e.g. embeddings indexes (default: everything)"),
    yes: bool = typer.Option(False, "--yes", "-y", help="do not ask for confirmation"),
) -> None:
    """Remove cached entries of the given kinds (or the whole cache). Results are never touched."""
    root = cache_root()
    if not root.is_dir():
        out.print(f"cache {escape(str(root))} is already empty", highlight=False)
        return
    present = {p.name: p for p in root.iterdir() if p.is_dir()}
    targets = list(present.values()) if not kind else []
    for name in kind or []:
        if name not in present:
            raise BenchError(f"no {name!r} in cache {root}; it has {', '.join(sorted(present)) or 'nothing'}")
        targets.append(present[name])
    if not targets:
        out.print(f"cache {escape(str(root))} is already empty", highlight=False)
        return
    size = sum(_size(p) for p in targets)
    what = ", ".join(p.name for p in targets)
    if not yes and not typer.confirm(f"remove {what} ({human_bytes(size)}) from {root}?"):
        raise click.exceptions.Abort()
    for path in targets:
        shutil.rmtree(path)
    out.print(f"removed {escape(what)} from {escape(str(root))}: {human_bytes(size)} freed", highlight=False,
              soft_wrap=True)


def _load_probe(path: Path) -> str | None:
    """For an entry without a manifest (written before manifests, or not through bench.storage.cache): read it fully
    with
    the reader of its kind; the problem in one line, or None when it reads."""
    try:
        if path.is_dir():
            return None
        suffix = path.suffix
        if suffix == ".npz":
            import numpy as np

            with np.load(path, allow_pickle=False) as data:
                for name in data.files:
                    data[name]
        elif suffix == ".npy":
            import numpy as np

            np.load(path, allow_pickle=False)
        elif suffix == ".faiss":
            import faiss

            faiss.read_index(str(path))
        elif suffix == ".safetensors":
            from safetensors import safe_open

            with safe_open(str(path), framework="np") as fh:
                for name in fh.keys():
                    fh.get_tensor(name)
        elif suffix == ".json":
            json.loads(path.read_text(encoding="utf-8"))
        elif path.stat().st_size == 0:
            return "empty file"
    except Exception as exc:  # any reader's failure is the verdict on this file
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        return f"unreadable ({type(exc).__name__}: {first})"
    return None


def _replayable(recipe: dict | None) -> bool:
    """Whether a recipe can be run again by name (a run of an in-process encoder object cannot: rebuilt on use)."""
    return bool(recipe and recipe.get("task") and recipe.get("replay", True))


def _replay(recipe: dict) -> None:
    """Rebuild what a run wrote by running it again into a throw-away results folder (its caches are what is kept).
    Task parameters are `key=value` strings (manifests written before recipes were typed) or a typed mapping."""
    import tempfile

    from bench.data.task import build_task
    from bench.evaluate import evaluate_named
    from bench.index import IndexSpec
    from bench.metrics import parse_ks
    from bench.systems.session import Session

    params = recipe.get("task_params") or {}
    if not recipe.get("retriever"):  # a task file: loading the task rebuilds it
        build_task(recipe["task"], params).load()
        return
    session = Session(index=IndexSpec(**recipe["index"])) if isinstance(recipe.get("index"), dict) else Session()
    with tempfile.TemporaryDirectory(prefix="bench-cache-fix-") as tmp:
        evaluate_named(recipe["task"], recipe["retriever"], parse_ks(recipe.get("ks") or [10]), params,
                       recipe.get("retriever_params") or (), seed=int(recipe.get("seed", 0)),
                       split=str(recipe.get("split", "test")), results_dir=tmp, session=session)


LOCK_WAIT = 2.0  # seconds `verify` waits for an entry's lock before it leaves the entry to the process holding it


def _locked(entry: Path):  # type: ignore[no-untyped-def]
    """The entry's lock, taken (None when another process holds it past LOCK_WAIT, or the cache is read-only and no
    lock can be made: then nothing is written anyway)."""
    from filelock import Timeout

    try:
        lock = entry_lock(entry, timeout=LOCK_WAIT)
        lock.acquire()
    except Timeout:
        return None
    except OSError:
        return contextlib.nullcontext()

    @contextlib.contextmanager
    def held():  # type: ignore[no-untyped-def]
        try:
            yield
        finally:
            lock.release()

    return held()


@cache_app.command("verify")
def verify(
    fix: bool = typer.Option(False, "--fix", help="move damaged entries aside and rebuild them (replaying the run "
                             "that wrote them); give entries written before manifests one"),
) -> None:
    """Check every cache entry against its manifest (size, checksum); entries without one are read fully.

    An entry that does not match is judged again under its lock, so one being written (or rebuilt) by a running
    process is never called damaged nor moved: it is skipped and said so. Exit code 1 when a damaged entry is left
    (without --fix), else 0."""
    root = cache_root()
    entries = list(iter_entries(root))
    damaged: list[tuple[Path, str, dict | None]] = []
    unverified: list[Path] = []
    busy: list[Path] = []
    for entry in entries:
        if verify_entry(entry) is None:
            continue  # intact, with its manifest
        lock = _locked(entry)
        if lock is None:
            busy.append(entry)
            out.print(f"[yellow]in use[/] {escape(str(entry))}: a running process holds its lock; left alone",
                      highlight=False, soft_wrap=True)
            continue
        with lock:  # the verdict, and what --fix does about it, under the lock every writer of the entry takes
            if not entry.exists() and not entry.is_symlink():
                continue  # removed by its owner meanwhile (a finished training's state)
            problem = verify_entry(entry, require_manifest=False)
            if problem is None and not manifest_path(entry).is_file():
                problem = _load_probe(entry)
                if problem is None:
                    unverified.append(entry)
                    if fix:
                        adopt_entry(entry)
            if problem is None:
                continue
            try:
                manifest = read_manifest(entry) or {}
                recipe = manifest.get("recipe") or (manifest.get("info") or {}).get("rebuild")
            except ValueError:
                recipe = None
            damaged.append((entry, problem, recipe))
            out.print(f"[red]damaged[/] {escape(str(entry))}: {escape(problem)}", highlight=False, soft_wrap=True)
            if fix:
                dest = quarantine(entry)
                out.print(f"moved {escape(str(entry))} to {escape(str(dest))}", highlight=False, soft_wrap=True)
    in_use = f", {len(busy)} in use by a running process (not judged)" if busy else ""
    out.print(f"checked {len(entries)} entries in {escape(str(root))}: {len(damaged)} damaged, {len(unverified)} "
              f"without a manifest (read fully, intact){in_use}", highlight=False)
    if not fix:
        if damaged:
            out.print("run `bench cache verify --fix` to move them aside and rebuild them", highlight=False)
            raise typer.Exit(1)
        return
    recipes: dict[str, dict] = {}
    for _, _, recipe in damaged:
        if recipe is not None and _replayable(recipe):
            recipes[json.dumps(recipe, sort_keys=True)] = recipe
    left = [e for e, _, r in damaged if not _replayable(r)]
    for recipe in recipes.values():
        what = f" with {recipe['retriever']} (seed {recipe.get('seed', 0)})" if recipe.get("retriever") else ""
        out.print(f"rebuilding: {escape(str(recipe['task']) + what)}", highlight=False)
        _replay(recipe)
    rebuilt = [e for e, _, r in damaged if e not in left and e.exists() and verify_entry(e) is None]
    out.print(f"fixed: {len(rebuilt)} rebuilt, {len(left)} moved aside (rebuilt on next use), "
              f"{len(unverified)} given a manifest; damaged files are in {escape(str(root / QUARANTINE))}",
              highlight=False)
    missing = [e for e, _, r in damaged if e not in left and e not in rebuilt]
    if missing:
        raise BenchError(f"the replayed run did not rebuild {', '.join(map(str, missing))}")
