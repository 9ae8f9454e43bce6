"""`bench cache ls` and `bench cache clear`: what the on-disk cache holds, and removing it."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import click
import typer
from rich.console import Console
from rich.table import Table

from bench.cache import cache_root
from bench.cli import app
from bench.errors import BenchError

out = Console()
cache_app = typer.Typer(help="Inspect or clear the cache (embeddings, indexes, generated data, checkpoints).",
                        no_args_is_help=True)
app.add_typer(cache_app, name="cache")


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"


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
        out.print(f"cache {root} is empty")
        return
    kinds = sorted(p for p in root.iterdir() if p.is_dir())
    if kind:
        unknown = set(kind) - {p.name for p in kinds}
        if unknown:
            have = ", ".join(p.name for p in kinds)
            raise BenchError(f"no {', '.join(sorted(unknown))} in cache {root}; it has {have}")
        kinds = [p for p in kinds if p.name in kind]
    table = Table(title=f"cache {root}")
    for col in ("kind", "entry", "size", "modified", "holds"):
        table.add_column(col, overflow="fold", justify="right" if col == "size" else "left")
    total = 0
    for folder in kinds:
        items = sorted(folder.iterdir())
        size = sum(_size(p) for p in items)
        total += size
        if not entries:
            table.add_row(folder.name, f"{len(items)} entries", human(size), "", "")
            continue
        for item in items:
            holds = _embedding_detail(item) if folder.name == "embeddings" and item.is_dir() else ""
            table.add_row(folder.name, item.name, human(_size(item)), _when(item), holds)
    out.print(table)
    out.print(f"total {human(total)}")


@cache_app.command("clear")
def clear(
    kind: list[str] = typer.Argument(None, help="kinds to remove, e.g. embeddings indexes (default: everything)"),
    yes: bool = typer.Option(False, "--yes", "-y", help="do not ask for confirmation"),
) -> None:
    """Remove cached entries of the given kinds (or the whole cache). Results are never touched."""
    root = cache_root()
    if not root.is_dir():
        out.print(f"cache {root} is already empty")
        return
    present = {p.name: p for p in root.iterdir() if p.is_dir()}
    targets = list(present.values()) if not kind else []
    for name in kind or []:
        if name not in present:
            raise BenchError(f"no {name!r} in cache {root}; it has {', '.join(sorted(present)) or 'nothing'}")
        targets.append(present[name])
    if not targets:
        out.print(f"cache {root} is already empty")
        return
    size = sum(_size(p) for p in targets)
    what = ", ".join(p.name for p in targets)
    if not yes and not typer.confirm(f"remove {what} ({human(size)}) from {root}?"):
        raise click.exceptions.Abort()
    for path in targets:
        shutil.rmtree(path)
    out.print(f"removed {what} from {root}: {human(size)} freed")
