"""The README's "Your own corpus" block, run as written: AmbigQA over a DPR `psgs_w100.tsv` and QAMPARI over its chunked
Wikipedia in the published layout (a folder of `wikipedia_chunks_{i}.jsonl` files of `{"id", "contents", "meta"}`
lines), from `bench data prepare` to `bench compare`, on small files in those layouts (tests/support/published.py; the
real ones are not on this machine)."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

from bench.cli import main
from tests.support import REPO
from tests.support.published import write_ambigqa, write_qampari

pytestmark = pytest.mark.slow


def readme_block() -> list[str]:
    """The commands of the fenced block under the README's '#### Your own corpus' heading."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    block = re.search(r"#### Your own corpus\n+```bash\n(.*?)```", text, re.S)
    assert block, "the README has no '#### Your own corpus' block"
    return [line for line in block.group(1).splitlines() if line.strip() and not line.startswith("#")]


def test_the_readme_block_runs_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    write_ambigqa(tmp_path)
    write_qampari(tmp_path)
    monkeypatch.chdir(tmp_path)
    commands = readme_block()
    assert [c.split()[1:3] for c in commands] == [["data", "prepare"], ["run", "--task"], ["compare", "--task"]] * 2
    printed: dict[str, str] = {}
    for command in commands:
        args = shlex.split(command)
        assert args[0] == "bench"
        code = main(args[1:])
        out = capsys.readouterr()
        assert code == 0, f"{command}\n{out.out}\n{out.err}"
        printed[command] = " ".join(out.out.split())
    for task, corpus in (("ambigqa", "psgs_w100"), ("qampari", "wikipedia_chunks")):
        (folder,) = (tmp_path / "results" / task).iterdir()
        assert re.fullmatch(rf"corpus={corpus}-[0-9a-f]{{8}}", folder.name)
        assert sorted(p.name for p in folder.iterdir()) == ["bm25", "minilm"]
        run = next(c for c in commands if c.startswith(f"bench run --task {task}"))
        assert f"{task} on corpus {folder.name.removeprefix('corpus=')}" in printed[run]  # the table names it
        compare = next(c for c in commands if c.startswith(f"bench compare --task {task}"))
        assert "bm25" in printed[compare] and "minilm" in printed[compare]
    rec = json.loads(next((tmp_path / "results" / "qampari").rglob("*.json")).read_text())
    assert rec["task_info"]["corpus"]["format"] == "jsonl-files" and rec["task_info"]["corpus"]["files"] == 4
    assert rec["task_info"]["steps"]["dev"]["every answer has a gold passage"] == 4
