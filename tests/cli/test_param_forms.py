"""Every command that takes `-r` goes through one parser (bench/systems/build.py), so each accepts the same forms: a
plain key, `<stage name>.key` and `<stage kind>.key`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.cli import main

TASK = ["-t", "d=8", "-t", "n_train=64", "-t", "n_test=20", "-t", "n_negatives=200"]
FORMS = {"plain": ["-r", "steps=3"], "stage name": ["-r", "amer.steps=3", "-r", "single-query.steps=3"],
         "stage kind": ["-r", "retriever.steps=3"]}


def _records(folder: Path) -> dict[str, dict]:
    return {r["system"]: r for r in (json.loads(p.read_text()) for p in folder.rglob("*.json") if "-" in p.stem)}


@pytest.mark.parametrize("form", FORMS)
def test_run_accepts_every_form(form: str, tmp_path: Path) -> None:
    pairs = FORMS[form] if form != "stage name" else ["-r", "amer.steps=3"]
    assert main(["run", "--task", "synthetic-linear-single", *TASK, "--retriever", "amer", *pairs, "--k", "10",
                 "--results-dir", str(tmp_path)]) == 0
    assert _records(tmp_path)["amer[steps=3]"]["retriever_params"]["steps"] == 3


@pytest.mark.parametrize("form", FORMS)
def test_train_accepts_every_form(form: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pairs = FORMS[form] if form != "stage name" else ["-r", "amer.steps=3"]
    assert main(["train", "--task", "synthetic-linear-single", *TASK, "--retriever", "amer", *pairs, "--retrain",
                 "--seed", "5"]) == 0
    assert "amer[steps=3] on synthetic-linear-single" in capsys.readouterr().out
    # the run finds the checkpoint that training made: the same key, so the same steps
    assert main(["run", "--task", "synthetic-linear-single", *TASK, "--retriever", "amer", "-r", "steps=3",
                 "--seed", "5", "--k", "10", "--results-dir", str(tmp_path)]) == 0
    assert _records(tmp_path)["amer[steps=3]"]["retriever_info"]["trained_now"] is False


@pytest.mark.parametrize("form", FORMS)
def test_repro_accepts_every_form(form: str, tmp_path: Path) -> None:
    assert main(["repro", "synthetic", "--settings", "synthetic-linear-single", *TASK, *FORMS[form],
                 "--results-dir", str(tmp_path)]) == 0
    records = _records(tmp_path)
    assert {r["retriever_params"]["steps"] for r in records.values()} == {3}
    assert set(records) == {"amer[steps=3]", "single-query[steps=3]"}
    assert (tmp_path / "repro-synthetic.md").is_file()


def test_a_form_no_stage_takes_is_one_error_naming_the_stage(capsys: pytest.CaptureFixture[str]) -> None:
    for command in (["train", "--retriever", "amer"], ["run", "--retriever", "amer"]):
        assert main([*command, "--task", "synthetic-linear-single", *TASK, "-r", "mmr.lam=0.5"]) == 2
        assert "no system of this run has a stage 'mmr'" in capsys.readouterr().err
