"""Which stored runs a command reads: the given run files, or the newest run of each system on a task. One function,
used by `bench compare | plot | export | report` and the Python API (bench/api.py) alike."""

from __future__ import annotations

from pathlib import Path

from bench.errors import BenchError
from bench.results.record import RunResult, latest_runs, load_run


def collect_runs(task: str | None, results_dir: Path,
                 run_files: list[Path] | None) -> dict[str, tuple[RunResult, Path]]:
    """label → (run, path): the given run files, or the newest valid run of each system on `task` under results_dir.
    The label is the system's canonical name (a plain retriever name for runs made before systems had names)."""
    found: dict[str, tuple[RunResult, Path]] = {}
    if run_files:
        for path in run_files:
            rec = load_run(path)
            if task and rec.task != task:
                raise BenchError(f"{path}: a run of task {rec.task!r}, not {task!r}")
            label = rec.system if rec.system not in found else f"{rec.system}#{rec.run_id[-8:]}"
            found[label] = (rec, Path(path))
        return found
    if not task:
        raise BenchError("give --task (or run files with --run)")
    found = latest_runs(results_dir, task)  # a file that does not read back is a warning naming it, then skipped
    if not found:
        raise BenchError(f"no runs of task {task!r} under {results_dir}; make some with `bench run --task {task} ...`")
    return found
