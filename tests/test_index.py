"""FAISS search against a brute-force numpy top-k, and deterministic tie-breaking."""

from __future__ import annotations

import numpy as np
import pytest

from bench.errors import BenchError
from bench.index import FlatIndex


def _numpy_topk(docs: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    d = docs / np.linalg.norm(docs, axis=1, keepdims=True)
    q = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    sims = q @ d.T
    rows = np.stack([np.lexsort((np.arange(len(s)), -s))[:k] for s in sims])
    return np.take_along_axis(sims, rows, axis=1), rows


def test_matches_brute_force_numpy() -> None:
    rng = np.random.default_rng(0)
    docs = rng.standard_normal((3000, 32)).astype(np.float32)
    queries = rng.standard_normal((100, 32)).astype(np.float32)
    index = FlatIndex.from_embeddings(docs, device="cpu")
    scores, rows = index.search(queries, 20)
    exp_scores, exp_rows = _numpy_topk(docs, queries, 20)
    np.testing.assert_array_equal(rows, exp_rows)
    np.testing.assert_allclose(scores, exp_scores, atol=1e-5)


def test_ties_go_to_the_lower_row() -> None:
    rng = np.random.default_rng(1)
    base = rng.standard_normal((1, 16)).astype(np.float32)
    docs = rng.standard_normal((500, 16)).astype(np.float32)
    dup_rows = np.array([480, 17, 301, 5, 250, 99, 400, 3, 222, 77, 150, 333, 444, 12, 470, 60, 190, 260, 370, 420])
    docs[dup_rows] = base  # 20 identical docs, all the best match: more ties than the search margin
    index = FlatIndex.from_embeddings(docs, device="cpu")
    _, rows = index.search(base, 5)
    assert rows[0].tolist() == sorted(dup_rows.tolist())[:5]
    _, rows = index.search(base, 25)
    assert rows[0, :20].tolist() == sorted(dup_rows.tolist())


def test_k_larger_than_corpus_pads() -> None:
    docs = np.eye(4, dtype=np.float32)
    index = FlatIndex.from_embeddings(docs, device="cpu")
    scores, rows = index.search(np.array([[1, 0.5, 0, 0]], dtype=np.float32), 6)
    assert rows[0].tolist() == [0, 1, 2, 3, -1, -1]
    assert np.isneginf(scores[0, 4:]).all()


def test_dimension_mismatch_is_a_clear_error() -> None:
    index = FlatIndex.from_embeddings(np.eye(4, dtype=np.float32), device="cpu")
    with pytest.raises(BenchError, match="4-dim"):
        index.search(np.ones((2, 3), dtype=np.float32), 2)
    with pytest.raises(BenchError, match="k must be > 0"):
        index.search(np.ones((2, 4), dtype=np.float32), 0)


def test_cached_index_reloads_identically(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path))
    rng = np.random.default_rng(2)
    docs = rng.standard_normal((200, 8)).astype(np.float32)
    calls = []

    def build() -> np.ndarray:
        calls.append(1)
        return docs

    a = FlatIndex.cached("k1", build, device="cpu")
    b = FlatIndex.cached("k1", build, device="cpu")
    assert len(calls) == 1
    np.testing.assert_array_equal(a.vectors(), b.vectors())
    q = rng.standard_normal((5, 8)).astype(np.float32)
    np.testing.assert_array_equal(a.search(q, 10)[1], b.search(q, 10)[1])


def test_vectors_view_outlives_the_index_object() -> None:
    import gc

    docs = np.random.default_rng(3).standard_normal((1000, 16)).astype(np.float32)
    view = FlatIndex.from_embeddings(docs, device="cpu").vectors()
    gc.collect()
    _ = [np.ones(16_000) for _ in range(50)]  # reuse freed memory, were the index gone
    np.testing.assert_allclose(view, docs / np.linalg.norm(docs, axis=1, keepdims=True), rtol=1e-5)
    assert not view.flags.writeable
