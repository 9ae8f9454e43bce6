"""`bench data prepare | info | audit` on a fixture AmbigQA task (BM25 candidates, so no model is loaded)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.cli import main
from tests.support.ambignq import DEV, TRAIN, qa, write_fixture


@pytest.fixture
def task_args(tmp_path: Path) -> list[str]:
    train = [*TRAIN, qa("t7", "who won the world cup in 2018 and 2014", ["France"], ["Germany"])]
    dev = [*DEV, qa("d3", "Who won the World Cup in 2018 and 2014?", ["France"], ["Germany"])]
    folder, corpus = write_fixture(tmp_path, train, dev)
    return ["--data-dir", str(folder), "--corpus", str(corpus), "-t", "dense=none", "-t", "val_fraction=0",
            "-t", "split_seed=1"]


def test_prepare_then_info(task_args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "prepare", "--task", "ambigqa", *task_args]) == 0
    text = capsys.readouterr().out
    assert "multi-answer (multipleQAs)" in text and "prepared:" in text
    assert main(["data", "info", "--task", "ambigqa", *task_args, "--encoder", "none", "--json"]) == 0
    rec = json.loads(capsys.readouterr().out)
    assert rec["steps"]["train"]["questions"] == 7 and rec["steps"]["dev"]["questions"] == 3
    assert rec["steps"]["train"]["multi-answer (multipleQAs)"] == 6
    assert rec["splits"]["test"]["targets_min"] >= 2
    assert "user corpus psgs.tsv" in rec["corpus"]


def test_info_explains_its_figures(task_args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "info", "--task", "ambigqa", *task_args, "--encoder", "none"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "splits, in questions: train 4 · test 2" in lines
    # where the splits come from, so "train 4" is not read as the train file's count
    assert "  train and val together: 4 = 3 (train file, kept) + 1 (dev half → train)" in lines
    assert "  test: 2 = 2 (dev half → test)" in lines
    assert any(line.startswith("gold passages / question: the corpus passages that contain") for line in lines)
    assert lines[0].startswith("ambigqa on user corpus psgs.tsv")
    assert any("train file" in line and "dev file" in line for line in lines)  # the steps' columns are files


def test_audit_reports_and_drops(task_args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "audit", "--task", "ambigqa", *task_args]) == 0
    out = capsys.readouterr().out
    assert '  test d3 "Who won the World Cup in 2018 and 2014?"' in out.splitlines()  # leaked: with their text
    assert "-t drop_leaked=true" in out
    assert "(question, passage) pairs in which one passage is gold for two or more of the question's answers" in out
    text = " ".join(out.split())
    assert "test questions whose words ≈ a train question's:" in text
    import re

    leaked = int(re.search(r"leaked test questions: (\d+); dropped: 0", text).group(1))
    assert leaked >= 1
    assert main(["data", "audit", "--task", "ambigqa", *task_args, "-t", "drop_leaked=true"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert f"leaked test questions: {leaked}; dropped: {leaked}" in text


@pytest.mark.robustness(case="`bench data audit --drop`, expecting later runs to leave the leaked questions out",
                        outcome="one error: nothing persists between commands; -t drop_leaked=true on the run drops "
                                "them (and is recorded)")
def test_audit_drop_is_gone_and_says_what_does_it(task_args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "audit", "--task", "ambigqa", *task_args, "--drop"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "error: --drop is gone" in err and "-t drop_leaked=true on `bench run`" in err


def test_bad_task_param_is_one_error_line(task_args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "info", "--task", "ambigqa", "--corpus", "/nonexistent.tsv"]) == 2
    err = capsys.readouterr().err
    assert "error:" in err and "nonexistent.tsv" in err


@pytest.mark.slow
def test_info_gold_similarity_with_minilm(task_args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "info", "--task", "ambigqa", *task_args, "--json"]) == 0
    rec = json.loads(capsys.readouterr().out)
    g = rec["gold_similarity"]
    assert g["n_within_pairs"] >= 1 and -1 <= g["random_mean"] <= 1 and -1 <= g["within_mean"] <= 1
    assert main(["data", "info", "--task", "ambigqa", *task_args]) == 0
    out = capsys.readouterr().out
    assert f"mean cosine {g['within_mean']:.3f} between the answers of one question ({g['n_within_pairs']:,} " \
           "pairs" in out
    assert "paper on ambigqa: 0.90 vs 0.77, with another encoder" in out  # the paper's figure for this task


def test_info_of_a_task_without_a_corpus_label_names_its_corpus_file(shared_data: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "info", "--task", "limit-small", "--encoder", "none"]) == 0
    out = capsys.readouterr().out
    task, _, corpus = out.splitlines()[0].partition(" on ")
    assert task == "limit-small" and Path(corpus).resolve() == (shared_data / "limit-small" / "corpus.jsonl").resolve()
    assert "m=2: 1,000" in out and "the relevant documents of a question in the task's relevance judgements" in out
