"""Progress for every step that may take more than a second, on stderr.

On a terminal: rich progress bars that vanish when done. Elsewhere (a pipe, a CI log, a file) a bar cannot redraw, so
each phase prints one line when it ends instead ("encode queries: 1,000/1,000 · all-MiniLM-L6-v2 · 0.8 s"); a phase
cut short by an error prints nothing, so an error stays the one line it is.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

STDERR = Console(stderr=True)


class PhaseProgress(Progress):
    """A rich Progress that, where its console is not a terminal, draws nothing and prints one line per phase (task)
    when the phase completes — or, for a phase that ends short of its total without an error, when the progress
    stops."""

    def __init__(self, *columns: Any, console: Console, **kwargs: Any) -> None:
        self.lines = not console.is_terminal
        super().__init__(*columns, console=console, disable=self.lines, **kwargs)
        self._reported: set[TaskID] = set()

    def update(self, task_id: TaskID, **kwargs: Any) -> None:
        super().update(task_id, **kwargs)
        self._report_finished(task_id)

    def advance(self, task_id: TaskID, advance: float = 1) -> None:
        super().advance(task_id, advance)
        self._report_finished(task_id)

    def stop(self) -> None:
        super().stop()
        if self.lines:
            for task in self.tasks:  # phases that ended short of their total (a total that was an upper bound)
                if task.id not in self._reported and task.completed > 0:
                    self._report(task.id)

    def __exit__(self, exc_type: type[BaseException] | None, exc_val: BaseException | None,
                 exc_tb: TracebackType | None) -> None:
        if exc_type is not None:  # cut short by an error: the error says what happened
            self._reported.update(task.id for task in self.tasks)
        self.stop()

    def _report_finished(self, task_id: TaskID) -> None:
        if self.lines and task_id not in self._reported and self._tasks[task_id].finished:
            self._report(task_id)

    def _report(self, task_id: TaskID) -> None:
        self._reported.add(task_id)
        task = self._tasks[task_id]
        done = f"{int(task.completed):,}" + (f"/{int(task.total):,}" if task.total is not None else "")
        status = str(task.fields.get("status") or "")
        seconds = task.finished_time if task.finished_time is not None else task.elapsed
        parts = [f"{task.description}: {done}", status, f"{seconds or 0.0:.1f} s"]
        self.console.print(" · ".join(p for p in parts if p), markup=False, highlight=False, soft_wrap=True)


def make_progress(console: Console | None = None, transient: bool = True) -> Progress:
    """Bars on a terminal, one line per phase elsewhere (module docstring)."""
    return PhaseProgress(
        TextColumn("[bold blue]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console or STDERR,
        transient=transient,
    )


@contextlib.contextmanager
def loading(what: str, status: str = "", console: Console | None = None) -> Iterator[None]:
    """One phase of ours while a model loads (`load <what>`), with transformers' and huggingface_hub's own loading
    bars switched off meanwhile: their tqdm bars would interleave with ours (and fill CI logs with redraws)."""
    restore: list[Callable[[], None]] = []
    try:
        from transformers.utils import logging as hf_logging

        if hf_logging.is_progress_bar_enabled():
            hf_logging.disable_progress_bar()
            restore.append(hf_logging.enable_progress_bar)
    except ImportError:  # no transformers: nothing of theirs to fold in
        pass
    try:
        from huggingface_hub.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars

        if not are_progress_bars_disabled():
            disable_progress_bars()
            restore.append(enable_progress_bars)
    except ImportError:
        pass
    try:
        with make_progress(console) as progress:
            bar = progress.add_task(f"load {what}", total=1, status=status)
            yield
            progress.advance(bar)
    finally:
        for undo in restore:
            undo()
def warn(message: str, console: Console | None = None) -> None:
    """One `warning:` line on stderr; the message is printed as is (a `[…]` in a name or path is not markup)."""
    (console or STDERR).print(f"[yellow]warning:[/] {escape(message)}", highlight=False, soft_wrap=True)
