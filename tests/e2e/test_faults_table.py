"""docs/robustness.md is what the suite tries: regenerate it and compare (tests/robustness_table.py)."""

from __future__ import annotations

import subprocess
import sys

from tests.support import REPO


def test_robustness_table_is_up_to_date() -> None:
    res = subprocess.run([sys.executable, "-m", "tests.robustness_table", "--check"], cwd=REPO, capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    text = (REPO / "docs" / "robustness.md").read_text(encoding="utf-8")
    rows = [line for line in text.splitlines() if line.startswith("| ") and line[2].isdigit()]
    for case in range(1, 8):  # each of the seven cases has at least one row (a test)
        assert any(f"| {case}: " in row for row in rows), case
