"""The text analogue of the synthetic headline, held out: on a planted task of real passages whose questions each
ask for two clusters that one vector cannot rank first together (tests/support/planted_text.py), the frozen-backbone
AMER beats the frozen-backbone Single-Query on test pairs of kinds never asked together in training, with a paired
bootstrap p < 0.05."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bench.cli import main
from bench.metrics.stats import paired_bootstrap
from tests.support.planted_text import make_planted_text

pytestmark = pytest.mark.slow

TRAIN = ["-r", "finetune=frozen", "-r", "steps=150", "-r", "batch_size=64", "-r", "eval_every=50"]


def test_frozen_amer_beats_frozen_single_query_on_held_out_pairs(tmp_path: Path, shared_data) -> None:
    folder = make_planted_text(tmp_path / "planted")
    results = tmp_path / "results"
    args = ["run", "--task", "beir", "-t", f"data_dir={folder}", "-t", "train_fraction=0.7", "--k", "2,10",
            "--device", "cpu", "--results-dir", str(results)]
    assert main([*args, "--retriever", "amer,single-query", *TRAIN]) == 0
    runs = {r["system"].split("[")[0]: r for r in (json.loads(p.read_text()) for p in results.rglob("*.json"))}
    amer, single = runs["amer"], runs["single-query"]
    # every question is its own pair of kinds, so the test pairs were never asked together in training
    assert amer["query_ids"] == single["query_ids"] and len(amer["query_ids"]) > 100
    a = np.asarray(single["per_query"]["MRECALL@2"])
    b = np.asarray(amer["per_query"]["MRECALL@2"])
    test = paired_bootstrap(a, b, seed=0)
    assert b.mean() > a.mean() and test.p_value < 0.05, (a.mean(), b.mean(), test.p_value)
