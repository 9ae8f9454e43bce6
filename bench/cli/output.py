"""Printing for a person, in a terminal, a pipe or a CI log alike: tables whole, paths and numbers never broken.

Outside a terminal rich assumes 80 columns (or $COLUMNS) and would wrap a wider table inside its cells, splitting a
path or a number over two lines; there a table is printed at its natural width instead (a pipe has no edge to wrap
at). Paths and other long single values are printed with `soft_wrap=True`: no line break is ever inserted in them.
"""

from __future__ import annotations

from rich.console import Console, RenderableType

WIDEST = 1_000  # the width a table is measured in: more than any table here needs


def print_whole(console: Console, renderable: RenderableType) -> None:
    """Print a table (or any renderable) without wrapping it into the console's width when that is not a terminal."""
    if console.is_terminal:
        console.print(renderable)
        return
    natural = console.measure(renderable, options=console.options.update(width=WIDEST)).maximum
    if natural <= console.width:
        console.print(renderable)
        return
    Console(file=console.file, width=natural, color_system="standard" if console.color_system else None,
            force_terminal=False, highlight=False).print(renderable)
