"""`bench perf --scale` on a tiny generated corpus: every code path (spawned measuring processes, mmap shards,
cached approximate index, re-scoring, the 25M extrapolation), not its speed."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from bench.cli.perf_scale import extrapolate, generate, run_scale


def test_generated_corpus_is_seeded_and_queries_share_its_structure() -> None:
    a = generate(500, 16, 0)
    assert np.array_equal(a, generate(500, 16, 0)) and not np.array_equal(a, generate(500, 16, 1))
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1, rtol=1e-5)
    q = generate(50, 16, 0, sample=1)
    assert (q @ a.T).max(axis=1).mean() > 0.5  # queries fall near the corpus's centres


@pytest.mark.slow
def test_scale_run_measures_every_kind(tmp_path: Path) -> None:
    out = tmp_path / "scale.json"
    figures = run_scale(rows=6000, dim=16, queries=40, k=10, kinds=["flat", "flat-mmap", "ivf", "ivfpq"],
                        rescore=200, repeats=1, output=out, console=Console(file=io.StringIO()),
                        threads=1)
    kinds = {r["kind"]: r for r in figures["results"]}
    assert set(kinds) == {"flat", "flat-mmap", "ivf", "ivfpq", "ivfpq+rescore200"}
    assert kinds["flat"]["recall_harness"] == 1.0 and kinds["flat-mmap"]["recall_harness"] == 1.0
    assert kinds["ivfpq+rescore200"]["recall_harness"] >= kinds["ivfpq"]["recall_harness"]
    assert kinds["ivfpq+rescore200"]["loaded_from_cache"] and not kinds["ivfpq"]["loaded_from_cache"]
    assert all(r["harness_qps"] > 0 and r["bare_qps"] > 0 and r["peak_bytes"] >= 0 for r in kinds.values())
    assert json.loads(out.read_text())["results"][0]["kind"] == "flat"
    ext = {e["kind"]: e for e in figures["extrapolation"]}
    assert not ext["flat"]["fits"] and ext["flat-mmap (on disk)"]["fits"]
    assert ext["ivfpq"]["bytes_per_vector"] < 300 and ext["ivfpq"]["fits"]


def test_extrapolation_scales_bytes_with_the_dimension() -> None:
    rows, dim = 1000, 384
    res = [{"kind": "flat", "index_bytes": rows * dim * 4, "recall_harness": 1.0},
           {"kind": "ivfpq", "index_bytes": rows * (48 + 8), "recall_harness": 0.5}]
    ext = {e["kind"]: e for e in extrapolate(res, rows, dim)}
    assert ext["flat"]["bytes_per_vector"] == 1536 * 4 and not ext["flat"]["fits"]
    assert ext["ivfpq"]["bytes_per_vector"] == 192 + 8 and ext["ivfpq"]["fits"]
    assert abs(ext["flat"]["gib"] - 25e6 * 6144 / 2**30) < 1e-6
