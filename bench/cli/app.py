"""The typer application every command module adds its commands to (bench/cli/<command>.py)."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="bench",
    help="multitarget-bench: compare retrievers on multi-target retrieval (MRECALL@k, diversity bins, significance).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
