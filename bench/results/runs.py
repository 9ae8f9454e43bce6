"""Which stored runs a command reads: the given run files, or the newest valid run of each system on a task. One
function, used by `bench compare | plot | export | report` and the Python API (bench/api.py) alike."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from bench.errors import BenchError
from bench.results.record import RunResult, find_runs, load_run, valid_runs, warn_skipped


def collect_runs(task: str | None, results_dir: Path, run_files: list[Path] | None,
                 on_skip: Callable[[str], None] = warn_skipped) -> dict[str, tuple[RunResult, Path]]:
    """label → (run, path): the given run files, or the newest valid run of each system on `task` under results_dir
    (a file that does not read back is skipped and named to `on_skip`, by default in a warning line). The label is the
    system's canonical name (a plain retriever name for runs made before systems had names). The newest runs must
    share one corpus: runs on several are an error saying which systems ran on which and how to name the files."""
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
    by_corpus: dict[str, dict[str, tuple[RunResult, Path]]] = {}
    for rec, path in valid_runs(find_runs(results_dir, task), on_skip):  # oldest first: the newest run wins
        corpus = str(rec.data_hash.get("corpus", ""))
        for other in by_corpus.values():  # a system's newest run decides its corpus
            other.pop(rec.system, None)
        by_corpus.setdefault(corpus, {})[rec.system] = (rec, path)
    by_corpus = {c: runs for c, runs in by_corpus.items() if runs}
    if not by_corpus:
        raise BenchError(f"no runs of task {task!r} under {results_dir}; make some with `bench run --task {task} ...`")
    if len(by_corpus) > 1:
        raise BenchError(mixed_corpora(task, by_corpus))
    (found,) = by_corpus.values()
    return found


def mixed_corpora(task: str, by_corpus: dict[str, dict[str, tuple[RunResult, Path]]]) -> str:
    """The error for a task whose newest runs are on several corpora: which systems ran on which, and how to pick."""
    parts: list[str] = []
    firsts: list[RunResult] = []
    example: list[str] = []
    for runs in by_corpus.values():
        rec, path = next(iter(runs.values()))
        firsts.append(rec)
        tag = rec.task_info.get("corpus_tag") or f"corpus {str(rec.data_hash.get('corpus', ''))[:12]}…"
        parts.append(f"{tag}: {', '.join(sorted(runs))} (in {path.parent.parent})")
        example = example or [str(p) for _, p in runs.values()][:2]
    a, b = firsts[1].task_params, firsts[0].task_params  # a later corpus against the first, as check_comparable
    params = ", ".join(f"{k}={a.get(k)!r} vs {b.get(k)!r}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k))
    return (f"cannot compare the newest runs of task {task!r}: their corpus differs ({len(by_corpus)} corpora — "
            + "; ".join(parts) + ")" + (f"; task params differ: {params}" if params else "")
            + ". Compare the runs of one corpus by naming their files: "
            + " ".join(f"--run {p}" for p in example) + " …")
