"""Dropping one file into a plugin package is all it takes: a new fuser, measure and objective are found by the
registries (no list to edit, no reinstall), shown by `bench list`, and usable in a run. The files go into a copy of
the packages in a temporary folder, run in a fresh interpreter."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.support import REPO

FUSER = '''
"""`first-list`: keeps each query's first list (a fuser dropped into the package by a test)."""
from bench.registry import register_fuser
from bench.systems.records import Candidates
from bench.systems.stages import Fuser


@register_fuser("first-list", description="each query's first list, as it is")
class FirstList(Fuser):
    def fuse(self, lists, depth):
        return Candidates(lists.rows[:, 0, :depth], lists.scores[:, 0, :depth])
'''

MEASURE = '''
"""`AnyHit@k`: 1 when the top k hold a document of at least one answer (a measure dropped in by a test)."""
from bench.metrics._hits import clusters_hit
from bench.registry import register_metric


@register_metric("AnyHit", description="1 when any answer has a document in the top k")
def any_hit(ranking, targets, k):
    return (clusters_hit(ranking, targets, k) > 0).astype(float)
'''

OBJECTIVE = '''
"""`rand1-again`: Single-Query's objective under another name (an objective dropped in by a test)."""
from bench.registry import register_objective
from bench.train.objectives.rand1 import Rand1


@register_objective("rand1-again", description="one random answer per example and step, again")
class Rand1Again(Rand1):
    pass
'''


@pytest.fixture(scope="module")
def copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("plugins")
    for pkg in ("bench", "retrievers", "tasks"):
        shutil.copytree(REPO / pkg, root / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    (root / "bench" / "systems" / "fusion" / "first_list.py").write_text(textwrap.dedent(FUSER))
    (root / "bench" / "metrics" / "any_hit.py").write_text(textwrap.dedent(MEASURE))
    (root / "bench" / "train" / "objectives" / "rand1_again.py").write_text(textwrap.dedent(OBJECTIVE))
    return root


def bench(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`bench ARGS` in a fresh interpreter that imports the packages of `root` (asserted: not the checkout's)."""
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import bench; "
            "assert bench.__file__.startswith(sys.argv[1]), bench.__file__; "
            "from bench.cli import main; sys.exit(main(sys.argv[2:]))")
    return subprocess.run([sys.executable, "-c", code, str(root), *args], cwd=root, capture_output=True, text=True,
                          timeout=300)


@pytest.mark.parametrize(("kind", "name"), [("fusers", "first-list"), ("metrics", "AnyHit"),
                                            ("objectives", "rand1-again")])
def test_a_dropped_in_file_is_listed(copy: Path, kind: str, name: str) -> None:
    listed = bench(copy, "list", kind)
    assert listed.returncode == 0, listed.stderr
    assert name in listed.stdout
    assert name not in bench(REPO, "list", kind).stdout  # the checkout itself has no such plugin


@pytest.mark.slow
def test_the_dropped_in_plugins_run(copy: Path, tmp_path: Path) -> None:
    results = tmp_path / "results"
    run = bench(copy, "run", "--task", "synthetic-linear-single", "-t", "d=8", "-t", "n_train=64", "-t", "n_test=20",
                "-t", "n_negatives=200", "--retriever", "oracle@first-list,single-query", "--metric", "AnyHit@10",
                "-r", "single-query.objective=rand1-again", "-r", "single-query.steps=3", "--k", "10",
                "--results-dir", str(results))
    assert run.returncode == 0, run.stderr
    records = {r["system"]: r for r in (json.loads(p.read_text()) for p in results.rglob("*.json"))}
    assert set(records) == {"oracle@first-list", "single-query[steps=3,objective=rand1-again]"}
    oracle = records["oracle@first-list"]
    # the first list of the oracle is the first answer's gold document: every query hits an answer, not all of them
    assert oracle["summary"]["AnyHit@10"] == 1.0 and oracle["summary"]["MRECALL@10"] == 0.0
    assert records["single-query[steps=3,objective=rand1-again]"]["retriever_info"]["objective"] == "rand1-again"
