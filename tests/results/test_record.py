"""Every results file a run writes parses with a strict JSON parser (no NaN / Infinity tokens)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from bench.cli import main
from bench.results.record import strict_json

TINY = ["-t", "d=16", "-t", "n_train=120", "-t", "n_test=20", "-t", "n_negatives=200"]
QUICK = ["-r", "width=32", "-r", "layers=1", "-r", "heads=2", "-r", "batch_size=32", "-r", "steps=10",
         "-r", "eval_every=5"]


def _refuse(token: str) -> float:
    raise ValueError(f"non-standard JSON token {token}")


def strict_load(path: Path) -> object:
    return json.loads(path.read_text(encoding="utf-8"), parse_constant=_refuse)


def test_strict_json_turns_non_finite_floats_into_null() -> None:
    value = {"a": [1.0, math.nan, np.float32("inf")], "b": np.array([-np.inf, 2.0]), "c": (np.int64(3), "x")}
    out = json.loads(json.dumps(strict_json(value), allow_nan=False), parse_constant=_refuse)
    assert out == {"a": [1.0, None, None], "b": [None, 2.0], "c": [3, "x"]}


def test_the_strict_loader_refuses_nan() -> None:
    with pytest.raises(ValueError, match="NaN"):
        json.loads('{"x": NaN}', parse_constant=_refuse)


def test_every_results_file_of_real_runs_is_strict_json(tmp_path: Path) -> None:
    """AMER with m_pred=1 (one vector: its pairwise output diversity is undefined), Single-Query and the reference
    retrievers, through the command line as a user runs them."""
    results = tmp_path / "results"
    common = ["run", "--task", "synthetic-linear-multi", *TINY, "--device", "cpu", "--results-dir", str(results)]
    assert main([*common, "--retriever", "amer", *QUICK, "-r", "m_pred=1"]) == 0
    assert main([*common, "--retriever", "single-query", *QUICK]) == 0
    assert main([*common, "--retriever", "oracle,input"]) == 0
    files = sorted(results.rglob("*.json"))
    assert len(files) == 4
    for f in files:
        strict_load(f)  # raises on NaN / Infinity
    (record,) = [r for r in map(strict_load, files) if r["retriever"] == "amer"]  # type: ignore[index]
    div = record["extra"]["output_diversity"]  # type: ignore[index]
    assert record["retriever_info"]["m_pred"] == 1  # type: ignore[index]
    assert div["pred_mean_pairwise_cos"] == [None] * 20
    assert all(isinstance(v, float) for v in div["target_mean_pairwise_cos"])


def test_long_system_names_fold_into_a_bounded_folder() -> None:
    from bench.results.record import system_folder

    assert system_folder("amer") == "amer" and system_folder("amer[steps=50]") == "amer[steps=50]"
    assert system_folder("a" * 100) == "a" * 100
    name = "amer[steps=3,instruction=" + "x" * 4975 + "]"
    folded = system_folder(name)
    assert len(folded) == 89 and folded.startswith(name[:80] + "-")
    assert folded != system_folder(name[:-1] + "y]") and system_folder("a" * 101) != "a" * 101
def test_runs_on_a_chosen_corpus_get_a_folder_of_their_own_and_old_ones_still_load(tmp_path: Path) -> None:
    from bench.results.record import find_runs, save_run
    from bench.results.runs import collect_runs
    from tests.results.test_report import make_run

    old = make_run("bm25", [1, 0], sims=None, run_id="20260101T000000000Z-old")  # before corpus folders
    a = make_run("bm25", [1, 1], sims=None, run_id="20260102T000000000Z-a", corpus="c-a")
    a.task_info["corpus_tag"] = "psgs_w100-1a2b3c4d"
    b = make_run("bm25", [0, 0], sims=None, run_id="20260103T000000000Z-b", corpus="c-b")
    b.task_info["corpus_tag"] = "wiki-vital"
    paths = [save_run(r, tmp_path) for r in (old, a, b)]
    assert [p.relative_to(tmp_path).parent.as_posix() for p in paths] == [
        "toy/bm25", "toy/corpus=psgs_w100-1a2b3c4d/bm25", "toy/corpus=wiki-vital/bm25"]
    assert find_runs(tmp_path, "toy") == paths  # both layouts, oldest first
    assert find_runs(tmp_path, "toy", "bm25") == paths
    assert collect_runs("toy", tmp_path, None)["bm25"][0].run_id == b.run_id  # the newest run decides the corpus


@pytest.mark.robustness(case="`bench compare` over runs of one task on two corpora (e.g. a forgotten -t corpus=)",
                        outcome="one error naming the corpora, which systems ran on each, and `--run FILE` to pick")
def test_compare_names_the_corpora_and_how_to_pick_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from bench.results.record import save_run
    from tests.results.test_report import AMER, BASE, make_run

    runs = [make_run("single-query", BASE, corpus="c-a"), make_run("amer", AMER, corpus="c-a"),
            make_run("single-query", BASE, corpus="c-b", run_id="20260105T000000000Z-sq")]
    runs[2].task_info["corpus_tag"] = "wiki-vital"
    for r in runs[:2]:
        r.task_info["corpus_tag"] = "psgs_w100-1a2b3c4d"
    paths = [save_run(r, tmp_path) for r in runs]
    assert main(["compare", "--task", "toy", "--results-dir", str(tmp_path)]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "their corpus differs (2 corpora" in err and "psgs_w100-1a2b3c4d: amer" in err
    assert "wiki-vital: single-query" in err and "--run " in err
    assert main(["compare", "--run", str(paths[0]), "--run", str(paths[1]), "--baseline", "single-query"]) == 0
