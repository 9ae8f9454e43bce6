"""`bench cache ls|clear` and a smoke run of `bench perf` (its figures are for benchmarks, not asserted here)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bench.cli import main
from bench.index import FlatIndex
from bench.index.encode import encode_in_shards


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "cache"
    monkeypatch.setenv("BENCH_CACHE_DIR", str(root))
    texts = [f"t{i}" for i in range(7)]
    encoder = lambda batch, advance: np.ones((len(batch), 4), np.float32)  # noqa: E731
    blocks = encode_in_shards("emb1", iter(texts), 7, encoder, shard_size=3, describe={"model_id": "org/model"})
    FlatIndex.cached("idx1", lambda: blocks, device="cpu")
    return root


def test_ls_shows_entries_and_what_they_hold(cache: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cache", "ls"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "embeddings" in out and "indexes" in out and "idx1.faiss" in out
    assert "org/model" in out and "7 docs × 4" in out and "complete" in out
    assert main(["cache", "ls", "--summary"]) == 0
    assert "1 entries" in capsys.readouterr().out


def test_ls_partial_encode(cache: Path, capsys: pytest.CaptureFixture[str]) -> None:
    meta_path = cache / "embeddings" / "emb1" / "meta.json"
    meta = json.loads(meta_path.read_text())
    meta["complete"] = False
    meta_path.write_text(json.dumps(meta))
    (cache / "embeddings" / "emb1" / "shard-00002.npy").unlink()
    assert main(["cache", "ls", "embeddings"]) == 0
    assert "partial 2/3 shards" in " ".join(capsys.readouterr().out.split())


def test_clear_one_kind_then_all(cache: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cache", "clear", "indexes", "--yes"]) == 0
    assert not (cache / "indexes").exists() and (cache / "embeddings").exists()
    assert main(["cache", "clear", "nope", "--yes"]) == 2
    assert "no 'nope' in cache" in capsys.readouterr().err
    assert main(["cache", "clear", "-y"]) == 0
    assert list(cache.iterdir()) == []


def test_clear_asks_first(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import typer

    monkeypatch.setattr(typer, "confirm", lambda *a, **k: False)
    assert main(["cache", "clear"]) == 130
    assert (cache / "embeddings").exists()


@pytest.mark.slow
def test_perf_smoke(tmp_path: Path, capsys: pytest.CaptureFixture[str], shared_data: Path) -> None:
    out = tmp_path / "perf.json"
    code = main(["perf", "--limit", "12", "--queries", "12", "--depth", "5", "--encode-repeats", "1",
                 "--search-repeats", "1", "--output", str(out)])
    assert code == 0
    figures = json.loads(out.read_text())
    assert figures["passages"] == 12 and figures["same_rows_as_bare"] == 1.0
    assert figures["max_abs_diff_vs_bare"] < 1e-5
    # the ratios are the recorded timings divided as documented (their values are for benchmarks, not tests)
    assert figures["encode_ratio"] == pytest.approx(min(figures["bare_encode_s"]) / min(figures["harness_cold_s"]))
    assert figures["search_ratio"] == pytest.approx(figures["bare_search_s"] / figures["harness_search_s"])
    assert figures["cache_speedup"] == pytest.approx(min(figures["harness_cold_s"]) / figures["harness_cached_s"])
    assert figures["harness_passages_per_s"] == pytest.approx(
        12 / min(figures["harness_cold_s"]))
    assert "encoding" in capsys.readouterr().out
