"""Write docs/robustness.md from the test suite: one row per test marked `@pytest.mark.robustness(case=..., outcome=...,
issue=N)`, so every row of the table is a test that tries that bad input or fault.

    python -m tests.robustness_table           # (re)write docs/robustness.md
    python -m tests.robustness_table --check   # exit 1 when docs/robustness.md is not what the suite says
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "robustness.md"

ISSUE_CASES = {
    1: "usage errors end in a traceback",
    2: "a truncated index / task file ends in a traceback, every later run too",
    3: "an unwritable --results-dir fails after all the work",
    4: "k larger than the corpus is a silent 1.0; limit-small's @100",
    5: "non-UTF-8 YAML in `bench check` is a UnicodeDecodeError",
    6: "two runs on one cache train the same checkpoint twice",
    7: "files are written with mode 0600",
    8: "credentials inside the LLM URL are written to every results JSON and printed in error lines",
    9: "`bench cache verify` calls a re-scanned corpus record corrupt; a fresh cache has 3 entries without a manifest",
    10: "`bench cache verify --fix` quarantines an entry a running encode is writing",
    11: "a results file with impossible values (MRECALL@10 = 5.0) is accepted; `compare` prints 500.00*",
    12: "an all-empty corpus and scores tied across a whole run pass without a word",
    13: "one broken old results file blocks every `bench compare` of the task",
    14: "a full disk ends in a traceback after the work (`basic_ios::clear: iostream error` from torch.save)",
    15: "a 5,000-character system name trains, then fails with 'File name too long'",
    16: "an approximate index too large for the corpus is a FAISS traceback about training points",
    17: "a negative seed is a numpy traceback; a diverging lr a scipy traceback at step 3",
    18: "under LC_ALL=C the results are written, then printing '—' is a UnicodeEncodeError",
    19: "the disk check refuses with more free than it says it needs: its 64 MiB margin is not said",
    20: "rich markup eats a system name's brackets: `wrote …/amer.trec` for amer[steps=50]",
    21: "a qrels TSV with a comma-separated header fails as \"field 'score' must be a number\"",
    22: "with HOME unusable and no $BENCH_CACHE_DIR the error blames $BENCH_CACHE_DIR",
}

HEADER = """# Robustness: bad inputs and faults the test suite tries

Generated from the test suite by `python -m tests.robustness_table` (do not edit by hand): every row is a test marked
`@pytest.mark.robustness`, and `tests/e2e/test_faults_table.py` fails when this file and the suite disagree. "Failed
before" names the failure a test was written for: each of those tests failed on the code before its fix.

| # | bad input or fault | what the harness does | failed before | test |
|---|---|---|---|---|
"""


class _Collector:
    def __init__(self) -> None:
        self.rows: dict[str, tuple[str, str, str, str]] = {}

    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        for item in items:
            mark = item.get_closest_marker("robustness")
            if mark is None:
                continue
            func = item.nodeid.split("[")[0]
            issue = mark.kwargs.get("issue")
            where = f"`{func}`"
            self.rows.setdefault(func, (mark.kwargs["case"], mark.kwargs["outcome"],
                                        f"{issue}: {ISSUE_CASES[issue]}" if issue else "", where))


def collect() -> list[tuple[str, str, str, str]]:
    collector = _Collector()
    code = pytest.main(["--collect-only", "-q", "-p", "no:cacheprovider", str(REPO / "tests")], plugins=[collector])
    if code not in (0, 5):
        raise SystemExit(f"collection failed (pytest exit code {code})")
    return [collector.rows[k] for k in sorted(collector.rows)]


def render(rows: list[tuple[str, str, str, str]]) -> str:
    def cell(text: str) -> str:
        return " ".join(text.split()).replace("|", "\\|")

    body = "".join(f"| {i} | {cell(c)} | {cell(o)} | {cell(n)} | {w} |\n" for i, (c, o, n, w) in enumerate(rows, 1))
    return HEADER + body


def main(argv: list[str]) -> int:
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):
        text = render(collect())
    if "--check" in argv:
        current = DOC.read_text(encoding="utf-8") if DOC.exists() else ""
        if current != text:
            print(f"{DOC} is out of date: run `python -m tests.robustness_table`", file=sys.stderr)
            return 1
        return 0
    DOC.parent.mkdir(parents=True, exist_ok=True)
    DOC.write_text(text, encoding="utf-8")
    print(f"wrote {DOC} ({text.count(chr(10)) - HEADER.count(chr(10))} rows)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
