"""Where a task's data lives: a folder the user gives (`-t data_dir=PATH`), else the project's shared real data
beside the checkout (`../shared/data/<name>`, the offline copies the tests, demos and benchmarks use)."""

from __future__ import annotations

from pathlib import Path

from bench.errors import BenchError

REPO_ROOT = Path(__file__).resolve().parents[2]


def shared_data_candidates(name: str) -> list[Path]:
    """Where a folder of the project's shared real data may be: beside the checkout, then beside the cwd."""
    return [REPO_ROOT.parent / "shared" / "data" / name, Path.cwd().parent / "shared" / "data" / name]


def resolve_data_dir(given: str | None, default_name: str | None, task: str) -> Path:
    if given:
        path = Path(given).expanduser()
        if not path.is_dir():
            raise BenchError(f"task {task}: data_dir {str(path)!r} is not a folder")
        return path.resolve()
    if default_name is None:
        raise BenchError(f"task {task} needs a data folder: pass -t data_dir=PATH (corpus, queries, qrels in BEIR "
                         f"form)")
    candidates = shared_data_candidates(default_name)
    for path in candidates:
        if path.is_dir():
            return path.resolve()
    raise BenchError(
        f"task {task}: no data folder given and none found at {', '.join(str(c) for c in candidates)}; "
        f"pass -t data_dir=PATH"
    )
