"""`bench report` (bench/cli/report.py): writes the page of one or more tasks and says where, with the whole path."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from bench.cli import main

TINY = ["-t", "d=16", "-t", "n_train=100", "-t", "n_test=40", "-t", "n_negatives=300"]


def test_report_writes_the_page_and_prints_its_whole_path(tmp_path: Path) -> None:
    results = tmp_path / "results"
    for task in ("synthetic-linear-single", "synthetic-linear-ood"):
        assert main(["run", "--task", task, "--retriever", "oracle,input", *TINY, "--results-dir", str(results)]) == 0
    page = tmp_path / "a-folder-whose-name-is-long-enough-to-cross-eighty-columns" / "report.html"
    res = subprocess.run([sys.executable, "-m", "bench", "report", "--task",
                          "synthetic-linear-single,synthetic-linear-ood", "--results-dir", str(results), "--out",
                          str(page), "--by", "euclidean"], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "COLUMNS": "80"})
    assert res.returncode == 0, res.stderr
    (line,) = res.stdout.splitlines()
    assert line.startswith(f"wrote {page} (") and line.endswith(page.resolve().as_uri())
    text = page.read_text(encoding="utf-8")
    assert text.count('<section class="task"') == 2 and "euclidean" in text


def test_a_task_without_runs_is_one_error_line(tmp_path: Path, capsys) -> None:
    assert main(["report", "--task", "synthetic-linear-single", "--results-dir", str(tmp_path), "--output",
                 str(tmp_path / "r.html")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: no runs of task 'synthetic-linear-single'") and len(err.splitlines()) == 1
    assert not (tmp_path / "r.html").exists()
