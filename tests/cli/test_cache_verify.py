"""`bench cache verify [--fix]`, and a damaged cache met by `bench run` (issue 13: caches that heal)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.cli import main
from bench.storage.cache import manifest_path

SMALL = ["-t", "d=16", "-t", "n_train=30", "-t", "n_test=20", "-t", "n_negatives=500"]
RUN = ["run", "--task", "synthetic-linear-single", "--retriever", "oracle", *SMALL, "--index", "hnsw"]
robust = pytest.mark.robustness


def _entries(cache: Path) -> tuple[Path, Path]:
    (task_file,) = (cache / "synthetic").glob("*.npz")
    (index,) = (cache / "indexes").glob("*.faiss")
    return task_file, index


def _summary(results: Path) -> list[dict]:
    return [json.loads(p.read_text())["summary"] for p in sorted(results.rglob("*.json"))]


@robust(case="`bench cache verify` on a cache with one truncated index and one truncated task file",
        outcome="names both (exit 1); `--fix` moves them aside and rebuilds them by replaying the run that wrote "
        "them; the next `bench run` succeeds with the same figures")
def test_verify_names_both_and_fix_rebuilds_them(cache: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main([*RUN, "--results-dir", str(tmp_path / "r1")]) == 0
    task_file, index = _entries(cache)
    sizes = {p: p.stat().st_size for p in (task_file, index)}
    for p in (task_file, index):
        with open(p, "r+b") as fh:
            fh.truncate(sizes[p] // 2)
    capsys.readouterr()
    assert main(["cache", "verify"]) == 1
    out = " ".join(capsys.readouterr().out.split())
    for p in (task_file, index):
        assert f"damaged {p}: file has {sizes[p] // 2} bytes, its manifest says {sizes[p]} (truncated or partial)" \
            in out
    assert "2 damaged" in out

    assert main(["cache", "verify", "--fix"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "fixed: 2 rebuilt" in out
    assert {p: p.stat().st_size for p in (task_file, index)} == sizes
    assert main(["cache", "verify"]) == 0
    assert "0 damaged" in capsys.readouterr().out
    assert len(list((cache / "quarantine").rglob("*.npz.*"))) == 2  # the truncated file and its manifest, kept

    assert main([*RUN, "--results-dir", str(tmp_path / "r2")]) == 0
    assert _summary(tmp_path / "r2") == _summary(tmp_path / "r1")


@robust(case="truncated synthetic task file (.npz) or FAISS index met by `bench run`",
        outcome="one `warning:` line per entry, moved to quarantine, rebuilt; the run succeeds (every later run too)")
@pytest.mark.parametrize("damage", ["truncate", "empty", "no-manifest-truncate"])
def test_run_heals_a_damaged_cache(cache: Path, tmp_path: Path, capsys: pytest.CaptureFixture, damage: str) -> None:
    assert main([*RUN, "--results-dir", str(tmp_path / "r1")]) == 0
    for p in _entries(cache):
        if damage.startswith("no-manifest"):  # an entry from before manifests: judged by loading it
            manifest_path(p).unlink()
        with open(p, "r+b") as fh:
            fh.truncate(0 if damage == "empty" else p.stat().st_size // 3)
    capsys.readouterr()
    assert main([*RUN, "--results-dir", str(tmp_path / "r2")]) == 0
    err = capsys.readouterr().err
    warnings = [line for line in err.splitlines() if line.startswith("warning: cache entry")]
    assert len(warnings) == 2 and "Traceback" not in err
    assert main([*RUN, "--results-dir", str(tmp_path / "r3")]) == 0
    assert "warning" not in capsys.readouterr().err
    assert _summary(tmp_path / "r2") == _summary(tmp_path / "r1") == _summary(tmp_path / "r3")


def test_verify_reads_entries_without_a_manifest(cache: Path, capsys: pytest.CaptureFixture) -> None:
    (cache / "indexes").mkdir(parents=True)
    (cache / "indexes" / "old.faiss").write_bytes(b"IxFI" + b"\0" * 10)
    (cache / "synthetic").mkdir()
    (cache / "synthetic" / "ok.json").write_text("{}")
    assert main(["cache", "verify"]) == 1
    out = " ".join(capsys.readouterr().out.split())
    assert f"damaged {cache / 'indexes' / 'old.faiss'}: unreadable (RuntimeError" in out
    assert "1 damaged, 1 without a manifest" in out
    assert main(["cache", "verify", "--fix"]) == 0
    assert "1 moved aside (rebuilt on next use), 1 given a manifest" in " ".join(capsys.readouterr().out.split())
    assert manifest_path(cache / "synthetic" / "ok.json").exists() and not (cache / "indexes" / "old.faiss").exists()
