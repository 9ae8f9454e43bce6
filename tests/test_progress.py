"""bench/progress.py: bars on a terminal; one line per phase elsewhere, none for a phase cut short by an error; model
loading as one phase of ours with transformers' own bars switched off."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from bench.progress import loading, make_progress


def _piped() -> tuple[Console, io.StringIO]:
    buf = io.StringIO()
    return Console(file=buf, width=80), buf


def test_one_line_per_phase_when_not_a_terminal() -> None:
    console, buf = _piped()
    with make_progress(console) as progress:
        a = progress.add_task("encode corpus", total=1_000, status="minilm")
        b = progress.add_task("search", total=3, status="1000 queries")
        for _ in range(10):
            progress.advance(a, 100)
        progress.update(b, completed=3)
    lines = buf.getvalue().splitlines()
    assert len(lines) == 2, lines
    assert lines[0].startswith("encode corpus: 1,000/1,000 · minilm · ") and lines[0].endswith(" s")
    assert lines[1].startswith("search: 3/3 · 1000 queries · ")


def test_a_phase_that_ends_short_reports_its_count_and_a_failed_one_nothing() -> None:
    console, buf = _piped()
    with make_progress(console) as progress:
        task = progress.add_task("match aliases", total=10, status="")
        progress.advance(task, 7)  # the total was an upper bound
    assert buf.getvalue().startswith("match aliases: 7/10 · ")
    console, buf = _piped()
    with pytest.raises(ValueError), make_progress(console) as progress:
        task = progress.add_task("encode queries", total=10, status="")
        progress.advance(task, 5)
        raise ValueError("bad input")
    assert buf.getvalue() == ""  # the error is the one line the user gets


def test_a_terminal_gets_bars_not_lines() -> None:
    buf = io.StringIO()
    console = Console(file=buf, width=80, force_terminal=True)
    with make_progress(console) as progress:
        task = progress.add_task("search", total=2, status="")
        progress.advance(task, 2)
    assert "search: 2/2" not in buf.getvalue()


def test_loading_is_one_phase_and_silences_transformers_bars() -> None:
    from transformers.utils import logging as hf_logging

    console, buf = _piped()
    assert hf_logging.is_progress_bar_enabled()
    with loading("backbone", "/models/tiny", console):
        assert not hf_logging.is_progress_bar_enabled()
    assert hf_logging.is_progress_bar_enabled()  # restored
    assert buf.getvalue().startswith("load backbone: 1/1 · /models/tiny · ")
