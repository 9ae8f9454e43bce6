"""Progress bars (rich) for every step that may take more than a second; they write to stderr and vanish when done."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

STDERR = Console(stderr=True)


def make_progress(console: Console | None = None, transient: bool = True) -> Progress:
    return Progress(
        TextColumn("[bold blue]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console or STDERR,
        transient=transient,
    )


def warn(message: str, console: Console | None = None) -> None:
    """One `warning:` line on stderr; the message is printed as is (a `[…]` in a name or path is not markup)."""
    (console or STDERR).print(f"[yellow]warning:[/] {escape(message)}", highlight=False, soft_wrap=True)
