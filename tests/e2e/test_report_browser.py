"""`bench report` in a real browser: Debian's headless Chromium driven by Playwright (tests/support/browser.py).

The page loads with no console error and no request beyond file:, data: and about:; clicking a column heading re-orders
the rows by that column; every figure renders with a non-zero size; every number in the tables equals what
`bench compare --ci --format json` gives for the same runs. The run writes a screenshot to the test's tmp folder and
copies it to results/report-screenshot.png for a person to look at.

Where Chromium or Playwright is missing the test fails and says how to install them (CI installs both: .ci/run).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from bench.cli import main
from tests.support import REPO
from tests.support import browser as chromium

pytestmark = pytest.mark.slow

TINY = ["-t", "d=16", "-t", "n_train=100", "-t", "n_test=40", "-t", "n_negatives=300"]
TASKS = {"synthetic-linear-single": "oracle,input,input+mmr", "synthetic-mlp-single": "oracle,input"}
SCREENSHOT = REPO / "results" / "report-screenshot.png"


def _texts(row: dict[str, Any]) -> dict[str, str]:
    """The page's text of each cell of one `bench compare --format json` row, formatted as `bench compare` does."""
    baseline = row["p_value"] is None
    value = "–" if row["value"] is None else f"{100 * row['value']:.2f}" + ("*" if row["significant"] else "")
    gain = "–" if baseline else ("n/a" if row["rel_gain"] is None else f"{100 * row['rel_gain']:+.1f}%")
    ci = "–" if baseline or row["ci_low"] is None else f"[{100 * row['ci_low']:+.2f}, {100 * row['ci_high']:+.2f}]"
    return {"value": value, "rel_gain": gain, "ci": ci}


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[tuple[str, str], dict[str, Any]]]:
    """The page of two small synthetic tasks, and `bench compare --ci --format json` of each task and measure."""
    tmp = tmp_path_factory.mktemp("report")
    results = tmp / "results"
    for task, systems in TASKS.items():
        assert main(["run", "--task", task, "--retriever", systems, *TINY, "--results-dir", str(results)]) == 0
    page = tmp / "report.html"
    assert main(["report", "--task", ",".join(TASKS), "--results-dir", str(results), "--output", str(page)]) == 0
    compared = {}
    for task in TASKS:
        for measure in ("MRECALL", "Recall"):
            out = tmp / f"{task}-{measure}.json"
            assert main(["compare", "--task", task, "--results-dir", str(results), "--ci", "--measure", measure,
                         "--format", "json", "--output", str(out)]) == 0
            compared[(task, measure)] = json.loads(out.read_text())
    return page, compared


def test_the_page_in_a_browser(report: tuple[Path, dict[tuple[str, str], dict[str, Any]]], tmp_path: Path) -> None:
    page_path, compared = report
    if why := chromium.missing():
        pytest.fail(why)
    assert page_path.stat().st_size < 2 * 1024 * 1024
    console_errors: list[str] = []
    page_errors: list[str] = []
    requests: list[str] = []
    shot = tmp_path / "report.png"
    with chromium.chromium_page(width=1600, height=1000) as page:
        page.on("console", lambda m: m.type in ("error", "warning") and console_errors.append(f"{m.type}: {m.text}"))
        page.on("pageerror", lambda e: page_errors.append(str(e)))
        page.on("request", lambda r: requests.append(r.url))
        page.goto(page_path.as_uri(), wait_until="load")

        cells = page.evaluate("""() => Array.from(document.querySelectorAll('table.results')).map(t => ({
            task: t.closest('section').dataset.task, measure: t.dataset.measure,
            rows: Array.from(t.tBodies[0].rows).map(r => ({system: r.dataset.system,
                cells: Array.from(r.cells).map(c => [c.dataset.key, c.textContent.trim(), c.dataset.sort])}))}))""")
        assert {(t["task"], t["measure"]) for t in cells} == set(compared)
        checked = 0
        for table in cells:
            doc = compared[(table["task"], table["measure"])]
            assert [r["system"] for r in table["rows"]] == doc["systems"]
            by_key = {(r["system"], r["metric"], r["subset"]): r for r in doc["rows"]}
            for row in table["rows"]:
                for key, text, sort in row["cells"][1:]:
                    field, *where = key.split("|")
                    if field == "cost":
                        cost = doc["costs"][row["system"]][where[0]]
                        assert text == ("–" if cost is None else f"{cost:.2f}")
                        continue
                    expected = by_key[(row["system"], where[0], where[1])]
                    assert text == _texts(expected)[field], (row["system"], key)
                    number = {"value": expected["value"], "rel_gain": expected["rel_gain"],
                              "ci": expected["ci_low"]}[field]
                    assert (sort == "" if number is None else float(sort) == number), (row["system"], key, sort)
                    checked += 1
        assert checked == sum(len(d["rows"]) for d in compared.values()) * 3

        table = page.locator("table.results").first
        header = table.locator("thead th[data-type=number]").nth(3)  # MRECALL@10 low-sim: value

        def column(index: int) -> list[float | None]:
            values = table.locator(f"tbody tr td:nth-child({index + 1})").evaluate_all(
                "cells => cells.map(c => c.dataset.sort)")
            return [None if v == "" else float(v) for v in values]

        index = int(header.get_attribute("data-col") or 0)
        before = table.locator("tbody tr").evaluate_all("rows => rows.map(r => r.dataset.system)")
        header.click()
        values = column(index)
        assert values == sorted(values, key=lambda v: (v is None, v)) and header.get_attribute("aria-sort") == \
            "ascending"
        header.click()
        after = table.locator("tbody tr").evaluate_all("rows => rows.map(r => r.dataset.system)")
        values = column(index)
        present = [v for v in values if v is not None]
        assert present == sorted(present, reverse=True) and header.get_attribute("aria-sort") == "descending"
        assert after != before  # the rows moved
        table.locator("thead th[data-col='0']").click()  # by name
        names = table.locator("tbody tr").evaluate_all("rows => rows.map(r => r.dataset.system)")
        assert names == sorted(names)

        figures = page.locator("figure.fig svg")
        assert figures.count() == 2 * len(TASKS)  # per task: the diversity bins and the gold similarity
        for i in range(figures.count()):
            box = figures.nth(i).bounding_box()
            assert box is not None and box["width"] > 100 and box["height"] > 100, (i, box)

        page.locator("button.copy").first.click()  # the copy button works or falls back, without an error
        page.screenshot(path=str(shot), full_page=True)

    assert not console_errors, console_errors
    assert not page_errors, page_errors
    assert requests and all(u.startswith(("file:", "data:", "about:")) for u in requests), requests
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    SCREENSHOT.parent.mkdir(exist_ok=True)
    shutil.copyfile(shot, SCREENSHOT)
    print(f"report screenshot: {SCREENSHOT}")
