"""Two `bench run` processes started together on the same task and cache: the checkpoint is trained once (the
entry's file lock), the other process waits and reuses it, and both report the same figures (issue 13)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.results.record import load_run
from tests.support import REPO

RUN = ["run", "--task", "synthetic-linear-single", "--retriever", "amer", "-t", "d=16", "-t", "n_train=100",
       "-t", "n_test=30", "-t", "n_negatives=1000", "-r", "steps=30", "-r", "width=32", "-r", "eval_every=10",
       "--k", "10,50"]


@pytest.mark.slow
@pytest.mark.robustness(case="two `bench run` started together on the same task and cache",
                        outcome="the checkpoint is trained once (file lock); the second process waits, loads it, "
                        "and reports the same figures", issue=6)
def test_two_runs_train_the_checkpoint_once(tmp_path: Path) -> None:
    env = {**os.environ, "BENCH_CACHE_DIR": str(tmp_path / "cache"), "PYTHONWARNINGS": "ignore"}
    procs = [subprocess.Popen([sys.executable, "-m", "bench", *RUN, "--results-dir", str(tmp_path / f"r{i}")],
                              cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(2)]
    outs = [p.communicate(timeout=900) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1][-2000:] for o in outs]
    records = [load_run(next((tmp_path / f"r{i}").rglob("*.json"))) for i in range(2)]
    assert sorted(r.retriever_info["trained_now"] for r in records) == [False, True]
    assert records[0].per_query == records[1].per_query
    assert len(list((tmp_path / "cache" / "checkpoints").glob("*.safetensors"))) == 1
    assert sum("using checkpoint" in o[1] for o in outs) == 1
