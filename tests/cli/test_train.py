"""The claim `bench repro synthetic` checks: AMER MRECALL@10 ≥ 0.95 and Single-Query ≤ 0.20 in every setting."""

from __future__ import annotations

import pytest

from bench.cli.train import _markdown


def _row(task: str, amer: float, single: float) -> dict:
    def cell(value: float) -> dict:
        return {"MRECALL@10": value, "MRECALL@100": 1.0, "wall": 1.0, "best_step": 10, "load": "0.00",
                "threads": 1, "run": f"{task}.json"}
    return {"task": task, "amer": cell(amer), "single-query": cell(single), "scale": "tiny"}


def _claim(amer: float, single: float) -> str:
    rows = [_row("synthetic-linear-single", 1.0, 0.0), _row("synthetic-mlp-ood", amer, single)]
    text = _markdown(rows, command="bench repro synthetic", started="now", total=60.0, load_start="0 / 0 / 0",
                     load_end="0 / 0 / 0", task_params=[], retriever_params=[], seed=0, reuse=False)
    [line] = [x for x in text.splitlines() if x.startswith("Claim (")]
    return line


@pytest.mark.parametrize(("amer", "single", "holds"), [
    (0.95, 0.20, True),     # both bounds are inclusive
    (0.95, 0.21, False),    # Single-Query above 0.20 (it passed under the old 0.25)
    (0.949, 0.0, False),    # AMER below 0.95
])
def test_the_claim_uses_the_stated_bounds(amer: float, single: float, holds: bool) -> None:
    line = _claim(amer, single)
    assert "AMER MRECALL@10 ≥ 0.95 and Single-Query ≤ 0.20 in every setting" in line
    assert line.endswith("**holds**.") is holds
    assert line.endswith("**does not hold**.") is not holds
