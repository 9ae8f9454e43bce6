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


# ------------------------------------------------------------------------------------------------ stores and kinds

from pathlib import Path  # noqa: E402

from bench.device import resolve  # noqa: E402
from bench.index import (  # noqa: E402
    ArrayStore,
    FaissIndex,
    Index,
    IndexSpec,
    MappedStore,
    cloner_options,
    factory_string,
    gpu_plan,
    l2_normalise,
    open_index,
    to_gpu,
    training_sample,
)


def _full_flat(docs: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """One bare FAISS flat search over the whole matrix to full depth, sorted by (score desc, row asc)."""
    import faiss

    d, i = faiss.knn(l2_normalise(queries), docs, len(docs), metric=faiss.METRIC_INNER_PRODUCT)
    sims = np.empty_like(d)
    np.put_along_axis(sims, i, d, axis=1)
    rows = np.stack([np.lexsort((np.arange(len(s)), -s))[:k] for s in sims])
    return np.take_along_axis(sims, rows, axis=1), rows


def _write_shards(folder: Path, docs: np.ndarray, bounds: list[int]) -> list[Path]:
    paths = []
    for n, (a, b) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
        p = folder / f"shard-{n:05d}.npy"
        np.save(p, docs[a:b])
        paths.append(p)
    return paths


@pytest.mark.parametrize("scan_bytes", [1, 120_000])  # every shard searched alone / consecutive shards joined
@pytest.mark.parametrize("bounds", [[0, 1024, 2048, 3000], [0, 7, 999, 1000, 2345, 3000], [0, 3000]])
def test_sharded_mmap_search_equals_one_flat_search_ties_included(tmp_path: Path, bounds: list[int], scan_bytes: int,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import bench.index.flat as bi

    monkeypatch.setattr(bi, "_SCAN_BYTES", scan_bytes)
    rng = np.random.default_rng(5)
    docs = l2_normalise(rng.standard_normal((3000, 24)).astype(np.float32))
    queries = rng.standard_normal((40, 24)).astype(np.float32)
    dup = np.array([2999, 5, 1500, 6, 1023, 1024, 2048, 30, 2100, 999, 1000, 12, 2500, 700, 2, 1999, 80, 1600])
    docs[dup] = docs[dup[0]]  # 18 identical docs spread over every shard: more ties than the search margin
    queries[0] = docs[dup[0]]
    queries[1] = -docs[dup[0]] + 0.01 * queries[1]
    docs[[100, 101, 2900]] = docs[[3, 3, 3]]  # a second tie group, inside the margin
    queries[2] = docs[3]
    store = MappedStore(_write_shards(tmp_path, docs, bounds), key="t")
    assert store.n_blocks == len(bounds) - 1 and store.ntotal == 3000
    in_memory = FlatIndex(ArrayStore(docs, normalised=True), "cpu")
    mapped = FlatIndex(store, "cpu")
    for k in (1, 5, 10, 17, 30, 100):
        exp_s, exp_r = _full_flat(docs, queries, k)
        s_mem, r_mem = in_memory.search(queries, k)
        s_map, r_map = mapped.search(queries, k)
        np.testing.assert_array_equal(r_map, exp_r)
        np.testing.assert_array_equal(r_mem, exp_r)
        np.testing.assert_array_equal(s_map, s_mem)
        np.testing.assert_array_equal(s_map, exp_s)
    assert r_map[0, :17].tolist() == sorted(dup.tolist())[:17]


def test_store_gather_and_padding(tmp_path: Path) -> None:
    docs = l2_normalise(np.random.default_rng(6).standard_normal((50, 8)).astype(np.float32))
    store = MappedStore(_write_shards(tmp_path, docs, [0, 20, 50]), key="g")
    rows = np.array([[49, 0, -1], [21, 19, 20]])
    got = store.gather(rows)
    assert got.shape == (2, 3, 8)
    np.testing.assert_array_equal(got[0, :2], docs[[49, 0]])
    assert not got[0, 2].any()
    np.testing.assert_array_equal(store[[21, 19, 20]], docs[[21, 19, 20]])
    with pytest.raises(BenchError, match="corpus row 50"):
        store.gather([50])


def test_legacy_raw_shards_are_normalised_when_read(tmp_path: Path) -> None:
    raw = np.random.default_rng(7).standard_normal((30, 8)).astype(np.float32) * 5
    store = MappedStore(_write_shards(tmp_path, raw, [0, 16, 30]), key="old", normalised=False)
    np.testing.assert_allclose(store.gather(np.arange(30)), l2_normalise(raw), rtol=1e-6)


def test_float16_store_searches_the_rounded_vectors() -> None:
    rng = np.random.default_rng(8)
    docs = rng.standard_normal((70_000, 16)).astype(np.float32)
    q = rng.standard_normal((20, 16)).astype(np.float32)
    half = ArrayStore(docs, storage="float16")
    assert half.array.dtype == np.float16 and half.n_blocks == 2 and half.nbytes == 70_000 * 16 * 2
    rounded = l2_normalise(docs).astype(np.float16).astype(np.float32)
    _, exp_rows = _full_flat(rounded, q, 10)
    _, rows = FlatIndex(half, "cpu").search(q, 10)
    np.testing.assert_array_equal(rows, exp_rows)


def _clustered(n: int, d: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((32, d)).astype(np.float32)
    return l2_normalise(centres[rng.integers(0, 32, n)] + 0.3 * rng.standard_normal((n, d)).astype(np.float32))


@pytest.mark.parametrize("kind", ["hnsw", "ivf", "ivfpq", "IVF8,SQ8", "PCA16,IVF4,Flat"])
def test_each_kind_round_trips_through_the_cache(kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import bench.index as bi

    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path))
    d = 8 if kind == "ivfpq" else 32  # ivfpq: PQ1x8, 256 centroids trained once (PQ training is slow on 2 cores)
    store = ArrayStore(_clustered(4000, d), key="docs-a")
    q = _clustered(30, d, seed=1)
    spec = IndexSpec(kind, nprobe=4)
    first = open_index(spec, store)
    assert isinstance(first, FaissIndex) and isinstance(first, Index)
    assert first.path is not None and first.path.exists() and first.path.parent == tmp_path / "indexes"
    s1, r1 = first.search(q, 10)
    monkeypatch.setattr(bi, "build_faiss", lambda *a, **k: pytest.fail("rebuilt a cached index"))
    again = open_index(spec, store)
    assert again.path == first.path and again.factory == first.factory
    s2, r2 = again.search(q, 10)
    np.testing.assert_array_equal(r1, r2)
    np.testing.assert_array_equal(s1, s2)
    assert (r1[:, 0] >= 0).all()
    assert again.describe()["factory"] == factory_string(kind, d, 4000)


def test_a_changed_factory_or_nprobe_never_serves_a_stale_index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                              ) -> None:
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path))
    store = ArrayStore(_clustered(3000, 16), key="docs-b")
    q = _clustered(50, 16, seed=2)
    a = open_index(IndexSpec("IVF16,Flat"), store)
    b = open_index(IndexSpec("IVF32,Flat"), store)
    assert a.path != b.path
    import faiss

    assert faiss.extract_index_ivf(a.cpu_index).nlist == 16 and faiss.extract_index_ivf(b.cpu_index).nlist == 32
    _, exact = FlatIndex(store, "cpu").search(q, 10)
    one = open_index(IndexSpec("IVF32,Flat", nprobe=1), store)
    every = open_index(IndexSpec("IVF32,Flat", nprobe=32), store)
    assert one.path == every.path == b.path  # nprobe does not change the built index ...
    assert one.describe()["params"] == {"nprobe": 1} and every.describe()["params"] == {"nprobe": 32}
    _, r_one = one.search(q, 10)
    _, r_all = every.search(q, 10)
    np.testing.assert_array_equal(r_all, exact)  # ... but every search uses its own
    assert (r_one != exact).any()
    _, r_one_again = one.search(q, 10)  # searching `every` in between left `one`'s nprobe alone
    np.testing.assert_array_equal(r_one_again, r_one)
    other_sample = open_index(IndexSpec("IVF32,Flat", train_size=1000), store)
    assert other_sample.path != b.path and other_sample.train_rows == 1000
    other_data = open_index(IndexSpec("IVF32,Flat"), ArrayStore(_clustered(3000, 16, seed=9), key="docs-c"))
    assert other_data.path != b.path


def test_training_sample_is_seeded() -> None:
    a = training_sample(1000, 100, 0)
    assert np.array_equal(a, training_sample(1000, 100, 0)) and len(set(a.tolist())) == 100
    assert not np.array_equal(a, training_sample(1000, 100, 1))
    assert np.array_equal(training_sample(50, 100, 0), np.arange(50))


def test_rescore_ranks_candidates_by_exact_cosine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path))
    docs = _clustered(4000, 32)
    store = ArrayStore(docs, normalised=True, key="docs-d")
    q = _clustered(40, 32, seed=3)
    _, exact = FlatIndex(store, "cpu").search(q, 10)
    plain = open_index(IndexSpec("IVF16,PQ8x4", nprobe=16), store)
    rescored = open_index(IndexSpec("IVF16,PQ8x4", nprobe=16, rescore=500), store)
    _, r_plain = plain.search(q, 10)
    s_res, r_res = rescored.search(q, 10)
    hits = lambda r: np.mean([len(set(a) & set(b)) / 10 for a, b in zip(r, exact, strict=True)])  # noqa: E731
    assert hits(r_res) > hits(r_plain) and hits(r_res) >= 0.95
    np.testing.assert_allclose(s_res, np.einsum("nkd,nd->nk", docs[r_res], l2_normalise(q)), rtol=1e-5)
    assert (np.diff(s_res, axis=1) <= 0).all()


def test_bad_index_names_are_clear_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path))
    store = ArrayStore(_clustered(100, 8), key="e")
    with pytest.raises(BenchError, match="not a kind .*index_factory refused"):
        open_index(IndexSpec("nonsense"), store)
    with pytest.raises(BenchError, match="--nprobe must be > 0"):
        IndexSpec("ivf", nprobe=0)


@pytest.mark.parametrize(("factory", "need"), [("Flat", None), ("HNSW32", None), ("IVF256,SQ8", 256),
                                                ("IVF1,PQ8x8", 256), ("IVF1024,PQ16x4fs", 1024), ("IVF4,PQ4x4", 16),
                                                ("HNSW32_PQ12", 256), ("IMI2x8,PQ8", 256), ("IVF99999,Flat", 99999)])
def test_training_needs_of_factory_strings(factory: str, need: int | None) -> None:
    from bench.index.spec import training_needs

    got = training_needs(factory)
    assert (got[0] if got else None) == need


def test_an_untrainable_index_is_refused_with_the_corpus_it_needs(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from bench.index.spec import check_trainable

    for kind in ("flat", "hnsw", "ivf"):  # an IVF of 46 documents has one list: it trains
        check_trainable(IndexSpec(kind), 46)
    with pytest.raises(BenchError, match=r"--index ivfpq cannot be trained here: .* at least 256 training vectors, but "
                                         r"the corpus has 46 documents; use a corpus of at least 256 documents"):
        check_trainable(IndexSpec("ivfpq"), 46)
    check_trainable(IndexSpec("ivfpq"), 256)
    with pytest.raises(BenchError, match="but train_size=100 gives it 100; raise train_size"):
        check_trainable(IndexSpec("IVF256,Flat", train_size=100), 10_000)
    # the same check guards the build itself, after encoding, whatever asked for the index
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path))
    with pytest.raises(BenchError, match="at least 512 training vectors, but the corpus has 100 documents"):
        open_index(IndexSpec("IVF512,Flat"), ArrayStore(_clustered(100, 8), key="e"))


# ------------------------------------------------------------------------------------------------ GPU code paths


class _RecordingFaissGpu:
    """Records what the harness asks FAISS's GPU cloner for (this machine has no GPU and faiss-cpu)."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    class GpuMultipleClonerOptions:
        shard = False
        useFloat16 = False
        useFloat16CoarseQuantizer = False

    class StandardGpuResources:
        pass

    def index_cpu_to_gpu_multiple_py(self, resources, index, co, gpus):  # noqa: ANN001, ANN201
        self.calls.append((len(resources), index, co, gpus))
        return "gpu-index"


def test_gpu_placement_shards_across_all_visible_gpus() -> None:
    every = resolve("cuda", "float16", env={}, n_gpus=4)
    plan = gpu_plan(every, fp16=True)
    assert plan is not None and plan.gpus == (0, 1, 2, 3) and plan.shard and plan.float16
    lib = _RecordingFaissGpu()
    co = cloner_options(plan, lib)
    assert co.shard and co.useFloat16 and co.useFloat16CoarseQuantizer
    out, resources = to_gpu("cpu-index", plan, lib)  # type: ignore[arg-type]
    assert out == "gpu-index" and len(resources) == 4
    assert lib.calls[0][0] == 4 and lib.calls[0][1] == "cpu-index" and lib.calls[0][3] == [0, 1, 2, 3]
    one = gpu_plan(resolve("cuda:1", "float32", env={}, n_gpus=2), fp16=False)
    assert one is not None and one.gpus == (1,) and not one.shard and not one.float16
    to_gpu("cpu-index", one, lib)  # type: ignore[arg-type]
    assert lib.calls[1][3] == [1]  # cuda:1 is GPU 1, not device 0
    assert gpu_plan(resolve("cpu", env={}, n_gpus=2), fp16=True) is None


def test_gpu_request_without_faiss_gpu_is_recorded_not_silent() -> None:
    placement = resolve("cuda:1", "float32", env={}, n_gpus=2)
    index = FlatIndex(ArrayStore(np.eye(4, dtype=np.float32)), placement)
    info = index.describe()
    assert info["device"] == "cpu" and "no GPU support" in info["notes"][0]
    assert index.search(np.eye(4, dtype=np.float32), 1)[1][:, 0].tolist() == [0, 1, 2, 3]


def test_bench_run_index_options_are_used_and_recorded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    from bench.cli import main

    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path / "cache"))
    small = ["-t", "d=16", "-t", "n_train=50", "-t", "n_test=40", "-t", "n_negatives=3000"]
    for extra in (["--index", "ivf", "--nprobe", "4", "--rescore", "50"], ["--index", "HNSW16", "--ef-search", "20"],
                  ["--fp16-index"]):
        code = main(["run", "--task", "synthetic-linear-single", "--retriever", "oracle", *small, *extra,
                     "--results-dir", str(tmp_path / "r" / extra[0])])
        assert code == 0
    info = {}
    for p in (tmp_path / "r").rglob("*.json"):
        rec = json.loads(p.read_text())["extra"]["index"]
        info[rec["factory"] + ("/fp16" if rec["fp16"] else "")] = rec
    assert info["IVF64,Flat"]["params"] == {"nprobe": 4} and info["IVF64,Flat"]["rescore"] == 50
    assert info["HNSW16"]["params"] == {"efSearch": 20}
    assert info["Flat/fp16"]["storage"] == "float16" and info["Flat/fp16"]["exact"]
    assert sorted(p.name for p in (tmp_path / "cache" / "indexes").glob("*.faiss")).__len__() == 2
