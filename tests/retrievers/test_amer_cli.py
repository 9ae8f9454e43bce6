"""`bench train` and `bench repro synthetic` on a tiny task (20 training steps)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.cli import main
from bench.storage.cache import cache_root

TINY = ["-t", "d=16", "-t", "n_train=120", "-t", "n_test=20", "-t", "n_negatives=200"]
QUICK = ["-r", "width=32", "-r", "layers=1", "-r", "heads=2", "-r", "batch_size=32", "-r", "steps=20",
         "-r", "eval_every=10"]


def test_train_stores_a_checkpoint_that_a_second_call_reuses(capsys) -> None:
    args = ["train", "--retriever", "amer", "--task", "synthetic-mlp-multi", *TINY, *QUICK, "--device", "cpu"]
    before = set((cache_root() / "checkpoints").glob("amer-*.safetensors"))  # the cache is shared by the session
    assert main(args) == 0
    first = capsys.readouterr().out
    rows = {cells[0]: cells[1:] for line in first.splitlines()
            if len(cells := [c.strip() for c in line.strip("│ ").split("│")]) >= 2}
    assert rows["trained now"] == ["yes"]
    stored = sorted(set((cache_root() / "checkpoints").glob("amer-*.safetensors")) - before)
    assert len(stored) == 1 and "".join(rows["checkpoint"]) in str(stored[0])
    assert main(args) == 0
    assert "no (matching checkpoint found" in capsys.readouterr().out
    assert sorted(set((cache_root() / "checkpoints").glob("amer-*.safetensors")) - before) == stored


def test_train_refuses_untrained_retrievers_and_bad_params(capsys) -> None:
    assert main(["train", "--retriever", "oracle", "--task", "synthetic-linear-single", *TINY]) == 2
    assert "not trained" in capsys.readouterr().err
    assert main(["train", "--retriever", "amer", "--task", "synthetic-linear-single", *TINY,
                 "-r", "sampling=never"]) == 2
    assert "sampling" in capsys.readouterr().err


def test_repro_writes_the_markdown_table(tmp_path: Path, capsys) -> None:
    code = main(["repro", "synthetic", "--settings", "synthetic-linear-ood", *TINY, *QUICK,
                 "--results-dir", str(tmp_path), "--device", "cpu"])
    assert code == 0
    table = (tmp_path / "repro-synthetic.md").read_text(encoding="utf-8")
    assert "| synthetic-linear-ood |" in table
    assert "Claim (AMER MRECALL@10 ≥ 0.95 and Single-Query ≤ 0.20 in every setting)" in table
    assert len(list((tmp_path / "synthetic-linear-ood").glob("*/*.json"))) == 2
    assert not list(tmp_path.glob(".*.tmp"))
    assert main(["repro", "synthetic", "--settings", "synthetic-nope"]) == 2
    assert "unknown synthetic setting" in capsys.readouterr().err


@pytest.mark.slow
def test_repro_settings_side_by_side_train_the_same_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--jobs 2 runs two settings in two processes; each trains (in its own fresh cache) what --jobs 1 trains."""
    settings = ["--settings", "synthetic-linear-ood,synthetic-mlp-single", *TINY, *QUICK, "--device", "cpu"]
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path / "cache-1"))
    assert main(["repro", "synthetic", *settings, "--jobs", "1", "--results-dir", str(tmp_path / "one")]) == 0
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path / "cache-2"))
    assert main(["repro", "synthetic", *settings, "--jobs", "2", "--results-dir", str(tmp_path / "two")]) == 0
    table = (tmp_path / "two" / "repro-synthetic.md").read_text(encoding="utf-8")
    assert "| synthetic-linear-ood |" in table and "| synthetic-mlp-single |" in table
    assert "2 settings at a time" in table

    def per_query(root: Path) -> dict[str, object]:
        runs = sorted(root.glob("synthetic-*/*/*.json"))
        assert len(runs) == 4
        return {str(p.relative_to(root).parent): json.loads(p.read_text())["per_query"] for p in runs}

    assert per_query(tmp_path / "one") == per_query(tmp_path / "two")
