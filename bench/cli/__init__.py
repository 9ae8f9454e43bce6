"""The `bench` command line (typer + rich): `main`, the entry point. Commands live beside it, one module per group."""

from __future__ import annotations

import os
import sys

import click
import typer
from rich.console import Console
from rich.markup import escape

from bench.cli.app import app
from bench.errors import BenchError

try:  # typer ≥ 0.2x vendors click as typer._click: its usage errors are not click's classes
    from typer._click.exceptions import ClickException as _TyperClickException

    _TYPER_USAGE: tuple[type[Exception], ...] = (_TyperClickException,)
except ImportError:
    _TYPER_USAGE = ()


def get_app() -> typer.Typer:
    """The app with every command module imported (each registers its commands on `app`)."""
    from bench.cli import cache, compare, data, perf, report, run, train  # noqa: F401  (registration by import)

    return app


def safe_output() -> None:
    """Under a locale whose encoding lacks a character the harness prints (`—`, `≤`, `λ` under LC_ALL=C with
    PYTHONUTF8=0: ASCII), print a replacement character instead of ending in a UnicodeEncodeError after the work is
    done; rich sees the encoding and draws ASCII tables. UTF-8 streams are left as they are."""
    for stream in (sys.stdout, sys.stderr):
        encoding = (getattr(stream, "encoding", None) or "").lower().replace("-", "").replace("_", "")
        if encoding not in ("utf8", "utf8sig") and hasattr(stream, "reconfigure"):
            try:
                stream.reconfigure(errors="replace")
            except (ValueError, OSError):  # a closed or unusual stream: leave it
                pass


def main(argv: list[str] | None = None) -> int:
    """Entry point: every BenchError becomes one red line and exit code 2, never a traceback."""
    safe_output()
    err = Console(stderr=True)
    try:
        rv = get_app()(args=argv, standalone_mode=False)
    except BenchError as exc:
        err.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        return _exit(2, argv)
    except KeyboardInterrupt:
        err.print("[yellow]interrupted[/]: results are written atomically, so no partial file was left")
        return _exit(130, argv)
    except click.exceptions.Abort:
        err.print("[yellow]aborted[/]")
        return _exit(130, argv)
    except _TYPER_USAGE as exc:  # typer's own usage message (with close matches for a mistyped command), exit 2
        _show_usage_error(exc)
        return _exit(int(getattr(exc, "exit_code", 2)), argv)
    except click.ClickException as exc:
        exc.show()
        return _exit(exc.exit_code, argv)
    if rv == 130:  # typer turns KeyboardInterrupt into exit code 130 without a word
        err.print("[yellow]interrupted[/]: results are written atomically, so no partial file was left")
    return _exit(rv if isinstance(rv, int) else 0, argv)


def _show_usage_error(exc: Exception) -> None:
    """Print a usage error as typer does in standalone mode: usage line, `Try ... --help`, the message in a panel.

    A bare `bench` (NoArgsIsHelpError) has already printed the help while the error was raised."""
    if type(exc).__name__ == "NoArgsIsHelpError":
        return
    try:
        from typer import rich_utils

        rich_utils.rich_format_error(exc)  # type: ignore[arg-type]
    except ImportError:
        exc.show()  # type: ignore[attr-defined]


def _exit(code: int, argv: list[str] | None) -> int:
    if argv is None:
        if code == 130:
            # Interrupted: the work is abandoned and every file was written atomically. Leave now, without the
            # interpreter's shutdown: a KeyboardInterrupt met again while it unwinds (measured: 2 runs in 10 of the
            # SIGINT test) makes Python end by SIGINT (status −2) instead of the documented 130.
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(130)
        sys.exit(code)
    return code
