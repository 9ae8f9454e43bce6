"""Corpus indexes: one small protocol, exact and approximate kinds, and one copy of the document vectors.

- A **vector store** holds the L2-normalised document vectors: `ArrayStore` in memory (vector tasks), `MappedStore`
  over the encoder's memory-mapped embedding shards (text corpora; bench/encode.py). The shards are the one copy of
  a text corpus's embeddings on disk; `gather(rows)` reads rows for MMR, training negatives and target diversity.
- An **index** answers `search(queries, k) -> (scores, rows)`: top-k by cosine (inner product of normalised vectors),
  best first, ties by the lower corpus row, padded with row -1 / score -inf past the corpus size. It has `dim`,
  `ntotal`, `store` and `describe()` (recorded with results).
- Kinds (`--index`): `flat` (exact: FAISS's brute-force inner product over the store, block by block, per-block top-k
  merged, so a corpus larger than RAM is searched from its memory-mapped shards), `hnsw` (HNSW32), `ivf`
  (IVF<nlist>,Flat), `ivfpq` (IVF<nlist>,PQ<d/8>x8), or any FAISS `index_factory` string. Approximate indexes are
  trained on a seeded sample of the store, cached under `<cache>/indexes/` keyed by (store, factory string, training
  sample), and searched with `nprobe` / `efSearch` set per search; `rescore=N` re-ranks their top N candidates by the
  exact cosine from the store.
- Placement (bench/device.py): on a GPU with faiss-gpu the index is cloned to every GPU of the placement (sharded
  when there are several), in float16 on request; HNSW has no GPU version and stays on the CPU (noted in
  `describe()`).

Exactness of the flat kind: per block FAISS returns the top (k + margin) rows; the heap of all blocks keeps the
best (k + margin); each row is sorted by (score desc, row asc). When a tie at the k-th score reaches the last kept
position, a lower row might have been cut, so that query is searched again to full depth: the result equals one
flat search over the whole matrix, ties included (tests/test_index.py checks this against shards of any size).
"""

from __future__ import annotations

import abc
import logging
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import faiss
import numpy as np
from rich.console import Console

from bench import cache as _cache
from bench.atomic import atomic_path
from bench.cache import cache_root, stable_hash
from bench.device import Placement, faiss_gpu_count
from bench.device import resolve as resolve_placement
from bench.errors import BenchError

try:
    from bench.errors import DamagedEntry
except ImportError:  # pragma: no cover - before the cache-entry API
    DamagedEntry = ValueError  # type: ignore[misc,assignment]

log = logging.getLogger(__name__)

INDEX_FORMAT = 2
_TIE_MARGIN = 8
_SCAN_BYTES = 128 << 20  # consecutive shards are searched together up to this size: one FAISS call per ~128 MiB
_QUERY_BATCH = 4096
_GATHER_BATCH = 256
KINDS = ("flat", "hnsw", "ivf", "ivfpq")

Progress = Callable[[int], None]


def l2_normalise(x: np.ndarray) -> np.ndarray:
    """A float32, C-contiguous, row-normalised copy (zero rows stay zero)."""
    out = np.array(x, dtype=np.float32, order="C", copy=True)
    if out.ndim != 2:
        raise BenchError(f"expected a 2-d array of vectors, got shape {out.shape}")
    faiss.normalize_L2(out)
    return out


def gpu_available() -> bool:
    return faiss_gpu_count() > 0


# ------------------------------------------------------------------------------------------------ vector stores


class VectorStore(abc.ABC):
    """L2-normalised document vectors, row i = corpus row i. Indexing with an int array gathers rows (float32)."""

    key: str  # identifies the vectors (cache keys of indexes built from them)
    dim: int
    ntotal: int
    storage: str  # "float32" or "float16"

    @abc.abstractmethod
    def blocks(self) -> Iterator[tuple[int, np.ndarray]]:
        """(first row, float32 C-contiguous block) in corpus order; blocks of a memory-mapped store are its shards."""

    @abc.abstractmethod
    def _gather(self, rows: np.ndarray) -> np.ndarray:
        """float32 (len(rows), dim) for a 1-d array of valid rows."""

    def gather(self, rows: np.ndarray | Sequence[int]) -> np.ndarray:
        """float32 copy of the given rows, shape rows.shape + (dim,) (any order, repeats allowed); rows < 0 (padding)
        give zero vectors (bench.stages.DocumentVectors)."""
        arr = np.asarray(rows, dtype=np.int64)
        flat = arr.ravel()
        if len(flat) and flat.max() >= self.ntotal:
            raise BenchError(f"corpus row {int(flat.max())} asked for, but the corpus has {self.ntotal} rows")
        valid = flat >= 0
        if valid.all():
            return self._gather(flat).reshape(*arr.shape, self.dim)
        out = np.zeros((len(flat), self.dim), dtype=np.float32)
        out[valid] = self._gather(flat[valid])
        return out.reshape(*arr.shape, self.dim)

    @property
    def n_blocks(self) -> int:
        return 1

    @property
    def shape(self) -> tuple[int, int]:
        return (self.ntotal, self.dim)

    @property
    def ndim(self) -> int:
        return 2

    @property
    def nbytes(self) -> int:
        return self.ntotal * self.dim * (2 if self.storage == "float16" else 4)

    def __len__(self) -> int:
        return self.ntotal

    def __getitem__(self, rows: Any) -> np.ndarray:
        if isinstance(rows, slice):
            return self.gather(np.arange(self.ntotal)[rows])
        arr = np.asarray(rows)
        if arr.dtype == bool:
            arr = np.flatnonzero(arr)
        if arr.ndim == 0:
            return self.gather(arr.reshape(1))[0]
        return self.gather(arr)

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        """The whole matrix in memory (float32): for callers that still need it; prefer gather()."""
        out = np.empty((self.ntotal, self.dim), dtype=np.float32)
        for start, block in self.blocks():
            out[start : start + len(block)] = block
        return out if dtype is None else out.astype(dtype, copy=False)

    def describe(self) -> dict[str, Any]:
        return {"store": type(self).__name__, "key": self.key, "rows": self.ntotal, "dim": self.dim,
                "storage": self.storage, "blocks": self.n_blocks}


class ArrayStore(VectorStore):
    """Vectors held in memory (vector tasks, or a small text corpus); float16 storage halves the memory."""

    def __init__(self, vectors: np.ndarray, key: str = "", normalised: bool = False, storage: str = "float32") -> None:
        vecs = np.ascontiguousarray(vectors, dtype=np.float32) if normalised else l2_normalise(vectors)
        if vecs.ndim != 2:
            raise BenchError(f"expected a 2-d array of vectors, got shape {vecs.shape}")
        if storage not in ("float32", "float16"):
            raise BenchError(f"vector storage must be float32 or float16, got {storage!r}")
        self.array = vecs.astype(np.float16) if storage == "float16" else vecs
        self.array.flags.writeable = False
        self.key = key or f"array:{_cache.array_hash(self.array)[:24]}"
        self.ntotal, self.dim = (int(s) for s in self.array.shape)
        self.storage = storage

    _BLOCK = 1 << 16  # float16 rows decoded to float32 per block

    @property
    def n_blocks(self) -> int:
        return 1 if self.storage == "float32" else max(1, math.ceil(self.ntotal / self._BLOCK))

    def blocks(self) -> Iterator[tuple[int, np.ndarray]]:
        if self.storage == "float32":
            yield 0, self.array
            return
        for start in range(0, self.ntotal, self._BLOCK):
            yield start, self.array[start : start + self._BLOCK].astype(np.float32)

    def _gather(self, rows: np.ndarray) -> np.ndarray:
        return self.array[rows].astype(np.float32, copy=False)

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        if self.storage == "float32" and dtype in (None, np.float32) and not copy:
            return self.array  # read-only: no copy of the corpus for callers that want the matrix
        return np.array(self.array, dtype=dtype or np.float32)


class MappedStore(VectorStore):
    """The encoder's embedding shards (`shard-NNNNN.npy`), memory-mapped: nothing is read until a block is searched.

    Shards written before shards were normalised at encode time (meta without `normalised`) are normalised as
    they are read; float16 shards are decoded to float32 one shard at a time."""

    def __init__(self, paths: Sequence[Path], key: str, normalised: bool = True) -> None:
        if not paths:
            raise BenchError("no embedding shards to search")
        self.paths = [Path(p) for p in paths]
        self.key = key
        self._normalised = normalised
        self._maps: list[np.ndarray] = []
        starts = [0]
        dims: set[int] = set()
        dtypes: set[str] = set()
        for p in self.paths:
            try:
                arr = np.load(p, mmap_mode="r", allow_pickle=False)
            except (OSError, ValueError) as exc:
                raise BenchError(f"{p}: unreadable embedding shard ({exc}); remove it to re-encode it") from None
            if arr.ndim != 2 or arr.dtype not in (np.float32, np.float16):
                raise BenchError(f"{p}: expected a 2-d float32/float16 array, found {arr.dtype} {arr.shape}")
            self._maps.append(arr)
            starts.append(starts[-1] + arr.shape[0])
            dims.add(int(arr.shape[1]))
            dtypes.add(str(arr.dtype))
        if len(dims) != 1 or len(dtypes) != 1:
            raise BenchError(f"{self.paths[0].parent}: shards disagree on dim {sorted(dims)} or dtype "
                             f"{sorted(dtypes)}; remove the folder to re-encode")
        self.starts = np.asarray(starts, dtype=np.int64)
        self.ntotal = int(starts[-1])
        self.dim = dims.pop()
        self.storage = dtypes.pop()

    @classmethod
    def from_shard_store(cls, shards: Any) -> MappedStore:
        """The store of a complete bench.encode.ShardStore."""
        meta = shards.read_meta() or {}
        if not meta.get("complete"):
            raise BenchError(f"{shards.meta_path}: the embedding shards are not complete; run the encode again")
        size = int(meta["shard_size"])
        n = (int(meta["n_docs"]) + size - 1) // size
        return cls([shards.shard_path(i) for i in range(n)], key=f"shards:{shards.key}",
                   normalised=bool(meta.get("normalised")))

    @property
    def n_blocks(self) -> int:
        return len(self.paths)

    def _decode(self, arr: np.ndarray) -> np.ndarray:
        if not self._normalised:
            return l2_normalise(arr)
        if arr.dtype != np.float32:
            return np.ascontiguousarray(arr, dtype=np.float32)
        return arr

    def blocks(self) -> Iterator[tuple[int, np.ndarray]]:
        for i, arr in enumerate(self._maps):
            yield int(self.starts[i]), self._decode(arr)

    def _gather(self, rows: np.ndarray) -> np.ndarray:
        out = np.empty((len(rows), self.dim), dtype=np.float32)
        shard = np.searchsorted(self.starts, rows, side="right") - 1
        for s in np.unique(shard):
            sel = np.flatnonzero(shard == s)
            local = rows[sel] - self.starts[s]
            order = np.argsort(local, kind="stable")  # sorted reads from the map
            out[sel[order]] = self._decode(np.asarray(self._maps[s][local[order]]))
        return out

    def size_on_disk(self) -> int:
        return sum(p.stat().st_size for p in self.paths)


# ------------------------------------------------------------------------------------------------ index spec


@dataclass(frozen=True)
class IndexSpec:
    """What `--index`, `--nprobe`, `--ef-search`, `--rescore`, `--fp16-index` ask for; recorded with results.

    `kind` is flat | hnsw | ivf | ivfpq | any FAISS index_factory string. `train_size` None = 64 points per IVF list
    (at least 10,000), capped at the corpus size. nprobe / efSearch None = the defaults below, recorded as used."""

    kind: str = "flat"
    nprobe: int | None = None
    ef_search: int | None = None
    rescore: int = 0
    fp16: bool = False
    train_size: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.kind or not self.kind.strip():
            raise BenchError("--index must name a kind (flat, hnsw, ivf, ivfpq) or a FAISS index_factory string")
        for name in ("nprobe", "ef_search", "train_size"):
            v = getattr(self, name)
            if v is not None and v <= 0:
                raise BenchError(f"--{name.replace('_', '-')} must be > 0, got {v}")
        if self.rescore < 0:
            raise BenchError(f"--rescore must be ≥ 0, got {self.rescore}")

    @property
    def exact(self) -> bool:
        return self.kind.strip().lower() in ("flat", "flatip", "flat,ip")

    def session_key(self) -> str:
        return stable_hash(asdict(self))


def default_nlist(n: int) -> int:
    """IVF lists: the power of two nearest √n, with at least 39 training points per list (FAISS's minimum)."""
    if n < 39:
        return 1
    nlist = 2 ** round(math.log2(math.sqrt(n)))
    return int(max(1, min(nlist, n // 39)))


def pq_subquantizers(d: int) -> int:
    """PQ bytes per vector: the largest divisor of d that is at most d/8 (8 dimensions per 8-bit code)."""
    target = max(1, d // 8)
    for m in range(target, 0, -1):
        if d % m == 0:
            return m
    return 1


def factory_string(kind: str, dim: int, ntotal: int) -> str:
    """The FAISS index_factory string for a kind name (flat, hnsw, ivf, ivfpq); other strings are used as given."""
    k = kind.strip()
    low = k.lower()
    if low == "flat":
        return "Flat"
    if low == "hnsw":
        return "HNSW32"
    if low == "ivf":
        return f"IVF{default_nlist(ntotal)},Flat"
    if low == "ivfpq":
        return f"IVF{default_nlist(ntotal)},PQ{pq_subquantizers(dim)}x8"
    return k


def default_train_size(index: faiss.Index, ntotal: int) -> int:
    ivf = _ivf_of(index)
    want = 64 * ivf.nlist if ivf is not None else 0
    if "PQ" in type(index).__name__ or "PQ" in type(_base(index)).__name__:
        want = max(want, 256 * 39)  # 8-bit PQ codebooks: 256 centroids per sub-quantizer
    return int(min(ntotal, max(want, 10_000)))


def _base(index: faiss.Index) -> faiss.Index:
    try:
        return faiss.downcast_index(index)
    except Exception:
        return index


def _ivf_of(index: faiss.Index) -> Any:
    try:
        return faiss.extract_index_ivf(index)
    except Exception:
        return None


# ------------------------------------------------------------------------------------------------ GPU placement


@dataclass(frozen=True)
class GpuPlan:
    """How an index goes to the GPU(s): which ordinals, sharded or replicated, float16 storage."""

    gpus: tuple[int, ...]
    shard: bool
    float16: bool

    def record(self) -> dict[str, Any]:
        return {"gpus": list(self.gpus), "shard": self.shard, "float16": self.float16}


def gpu_plan(placement: Placement, fp16: bool) -> GpuPlan | None:
    """None on the CPU; else the placement's GPUs, sharded across them when there are several."""
    if not placement.on_gpu or not placement.gpus:
        return None
    return GpuPlan(tuple(placement.gpus), shard=len(placement.gpus) > 1, float16=fp16)


def cloner_options(plan: GpuPlan, lib: Any = faiss) -> Any:
    """FAISS's GpuMultipleClonerOptions for a plan (float16 storage and coarse quantizer on request, sharding)."""
    co = lib.GpuMultipleClonerOptions()
    co.shard = plan.shard
    co.useFloat16 = plan.float16
    co.useFloat16CoarseQuantizer = plan.float16
    return co


def to_gpu(index: faiss.Index, plan: GpuPlan, lib: Any = faiss) -> tuple[Any, list[Any]]:
    """Clone a CPU index onto the plan's GPUs; returns (GPU index, the resources that must outlive it)."""
    resources = [lib.StandardGpuResources() for _ in plan.gpus]
    co = cloner_options(plan, lib)
    return lib.index_cpu_to_gpu_multiple_py(resources, index, co, list(plan.gpus)), resources


def _gpu_note(placement: Placement, what: str) -> str | None:
    if not placement.on_gpu:
        return None
    if faiss_gpu_count() == 0:
        return f"{what} on the CPU: this faiss has no GPU support (install faiss-gpu-cu12)"
    return None


# ------------------------------------------------------------------------------------------------ the protocol


@runtime_checkable
class Index(Protocol):
    """What the pipeline and retrievers use: search, its dimension and size, and the vectors it was built from."""

    dim: int
    store: VectorStore
    path: Path | None

    @property
    def ntotal(self) -> int: ...

    def search(self, queries: np.ndarray, k: int, progress: Progress | None = None
               ) -> tuple[np.ndarray, np.ndarray]: ...

    def gather(self, rows: np.ndarray | Sequence[int]) -> np.ndarray: ...

    def describe(self) -> dict[str, Any]: ...


def _prepare_queries(queries: np.ndarray, dim: int, k: int) -> np.ndarray:
    if k <= 0:
        raise BenchError(f"k must be > 0, got {k}")
    q = np.asarray(queries, dtype=np.float32)
    if q.ndim != 2 or q.shape[1] != dim:
        raise BenchError(f"query vectors have shape {q.shape}, but the index holds {dim}-dim vectors")
    return l2_normalise(q)


# ------------------------------------------------------------------------------------------------ exact search


class FlatIndex:
    """Exact cosine search over a vector store: FAISS brute force block by block (GPU when placed there)."""

    kind = "flat"

    def __init__(self, store: VectorStore, placement: Placement | str = "cpu", fp16: bool = False) -> None:
        self.store = store
        self.dim = store.dim
        self.path: Path | None = None
        self.placement = placement if isinstance(placement, Placement) else resolve_placement(placement)
        self.fp16 = fp16
        self.notes: list[str] = []
        self._gpu: Any = None
        self._resources: list[Any] = []
        self.device = "cpu"
        plan = gpu_plan(self.placement, fp16)
        note = _gpu_note(self.placement, "flat search")
        if note:
            self.notes.append(note)
            log.warning(note)
        elif plan is not None:
            cpu = faiss.IndexFlatIP(self.dim)
            for _, block in store.blocks():
                cpu.add(block)
            self._gpu, self._resources = to_gpu(cpu, plan)
            self.device = "cuda"
            self.plan = plan

    # ---- constructors kept for callers of the former in-memory index
    @classmethod
    def from_embeddings(cls, embeddings: np.ndarray, device: Placement | str = "cpu", normalised: bool = False,
                        fp16: bool = False) -> FlatIndex:
        return cls(ArrayStore(embeddings, normalised=normalised, storage="float16" if fp16 else "float32"), device,
                   fp16=fp16)

    @classmethod
    def from_blocks(cls, blocks: Iterable[np.ndarray], device: Placement | str = "cpu") -> FlatIndex:
        """Build an in-memory store from row blocks (normalised as they come)."""
        parts: list[np.ndarray] = []
        start = 0
        dim: int | None = None
        for block in blocks:
            vecs = l2_normalise(block)
            if dim is None:
                dim = vecs.shape[1]
            elif vecs.shape[1] != dim:
                raise BenchError(
                    f"embedding rows {start}–{start + len(vecs) - 1}, field 'dim': {vecs.shape[1]}-dim vectors, but "
                    f"the index being built holds {dim}-dim vectors"
                )
            parts.append(vecs)
            start += len(vecs)
        if not parts:
            raise BenchError("no embeddings to index")
        return cls(ArrayStore(np.concatenate(parts), normalised=True), device)

    @property
    def ntotal(self) -> int:
        return self.store.ntotal

    def gather(self, rows: np.ndarray | Sequence[int]) -> np.ndarray:
        """The store's vectors of these rows (bench.stages.DocumentVectors): MMR, negatives, diversity."""
        return self.store.gather(rows)

    def vectors(self) -> np.ndarray:
        """The stored normalised vectors as one matrix (a read-only view for an in-memory float32 store)."""
        return np.asarray(self.store)

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": "flat", "factory": "Flat", "exact": True, "fp16": self.fp16,
                               "device": self.device, **self.store.describe()}
        if self._gpu is not None:
            out["gpu"] = self.plan.record()
        if self.notes:
            out["notes"] = list(self.notes)
        return out

    def search(self, queries: np.ndarray, k: int, progress: Progress | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (scores, rows) per query, best first, ties by lower row; rows past the corpus size are -1."""
        q = _prepare_queries(queries, self.dim, k)
        n = q.shape[0]
        k_eff = min(k, self.ntotal)
        depth = min(self.ntotal, k_eff + _TIE_MARGIN)
        scores = np.full((n, k), -np.inf, dtype=np.float32)
        rows = np.full((n, k), -1, dtype=np.int64)
        if self._gpu is not None or self.store.n_blocks == 1:
            for start in range(0, n, _QUERY_BATCH):
                stop = min(n, start + _QUERY_BATCH)
                d, i = self._search_candidates(q[start:stop], depth)
                self._finish(q[start:stop], d, i, k_eff, depth, scores[start:stop], rows[start:stop])
                if progress is not None:
                    progress(stop - start)
        else:  # one pass over the blocks (shards) for all queries: each block is read once
            d, i = self._scan_blocks(q, depth, progress)
            self._finish(q, d, i, k_eff, depth, scores, rows)
        return scores, rows

    def _search_candidates(self, q: np.ndarray, depth: int) -> tuple[np.ndarray, np.ndarray]:
        if self._gpu is not None:
            return self._gpu.search(q, depth)
        _, block = next(self.store.blocks())
        return faiss.knn(q, block, depth, metric=faiss.METRIC_INNER_PRODUCT)

    def _scan_blocks(self, q: np.ndarray, depth: int, progress: Progress | None) -> tuple[np.ndarray, np.ndarray]:
        heap = faiss.ResultHeap(q.shape[0], depth, keep_max=True)
        done = 0
        reported = 0
        for start, block in _grouped(self.store.blocks(), _SCAN_BYTES):
            d, i = faiss.knn(q, block, min(depth, len(block)), metric=faiss.METRIC_INNER_PRODUCT)
            heap.add_result(d, i + start)
            done += len(block)
            if progress is not None:
                now = q.shape[0] * done // self.ntotal
                if now > reported:
                    progress(now - reported)
                    reported = now
        heap.finalize()
        return heap.D, heap.I

    def _finish(self, q: np.ndarray, d: np.ndarray, i: np.ndarray, k_eff: int, depth: int, scores: np.ndarray,
                rows: np.ndarray) -> None:
        d, i = _order_ties(d, i)
        # A tie that runs to the last kept position could hide a lower row: search those queries to full depth.
        if depth < self.ntotal:
            crossing = np.flatnonzero(d[:, k_eff - 1] == d[:, depth - 1])
            if len(crossing):
                d, i = d.copy(), i.copy()
                d[crossing, :k_eff], i[crossing, :k_eff] = self._exact_rows(q[crossing], k_eff)
        scores[:, :k_eff] = d[:, :k_eff]
        rows[:, :k_eff] = i[:, :k_eff]

    def _exact_rows(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Every score of these queries (FAISS, block by block, as in the search), sorted by (score desc, row asc)."""
        out_d = np.empty((len(q), k), dtype=np.float32)
        out_i = np.empty((len(q), k), dtype=np.int64)
        for a in range(0, len(q), 16):
            qs = q[a : a + 16]
            sims = np.empty((len(qs), self.ntotal), dtype=np.float32)
            for start, block in self.store.blocks():
                d, i = faiss.knn(qs, block, len(block), metric=faiss.METRIC_INNER_PRODUCT)
                np.put_along_axis(sims[:, start : start + len(block)], i, d, axis=1)
            for r, s in enumerate(sims):
                order = np.lexsort((np.arange(len(s)), -s))[:k]
                out_d[a + r], out_i[a + r] = s[order], order
        return out_d, out_i

    # ---- legacy: a FAISS file of the whole matrix (the pipeline no longer writes one; the store is the copy)
    @classmethod
    def cached(cls, key: str, build_embeddings: Callable[[], np.ndarray | Iterable[np.ndarray]],
               device: Placement | str = "cpu") -> FlatIndex:
        """Load `<cache>/indexes/<key>.faiss` or build it from `build_embeddings()` (matrix or row blocks)."""
        path = cache_root() / "indexes" / f"{key}.faiss"
        made: list[FlatIndex] = []

        def build(tmp: Path) -> None:  # a verified cache entry (bench/cache.py): manifest, lock, heals when damaged
            emb = build_embeddings()
            made.append(cls.from_embeddings(emb) if isinstance(emb, np.ndarray) else cls.from_blocks(emb))
            made[0].save(tmp)

        def load(p: Path) -> VectorStore:
            if made:
                return made[0].store
            loaded = faiss.read_index(str(p))
            xb = faiss.rev_swig_ptr(loaded.get_xb(), loaded.ntotal * loaded.d)  # type: ignore[attr-defined]
            xb = xb.reshape(loaded.ntotal, loaded.d)
            return ArrayStore(np.array(xb), key=f"faiss:{key}", normalised=True)

        out = cls(_cache.load_or_build(path, build, load, packages=("faiss-cpu", "faiss-gpu-cu12")), device)
        out.path = path
        return out

    def save(self, path: str | Path) -> None:
        index = faiss.IndexFlatIP(self.dim)
        for _, block in self.store.blocks():
            index.add(block)
        with atomic_path(path) as tmp:
            faiss.write_index(index, str(tmp))


# ------------------------------------------------------------------------------------------------ approximate


class FaissIndex:
    """Any FAISS index_factory index (inner product) over a store: trained on a seeded sample, cached, searched with
    nprobe / efSearch set per search, optionally re-scored exactly from the store."""

    def __init__(self, index: faiss.Index, store: VectorStore, spec: IndexSpec, factory: str,
                 placement: Placement | str = "cpu", train_rows: int = 0, path: Path | None = None,
                 build_seconds: float | None = None) -> None:
        self.cpu_index = index
        self.store = store
        self.spec = spec
        self.factory = factory
        self.dim = int(index.d)
        self.path = path
        self.train_rows = train_rows
        self.build_seconds = build_seconds
        self.placement = placement if isinstance(placement, Placement) else resolve_placement(placement)
        self.notes: list[str] = []
        self.index: Any = index
        self.device = "cpu"
        self._resources: list[Any] = []
        self.plan: GpuPlan | None = None
        if index.ntotal != store.ntotal:
            raise BenchError(f"{path or 'index'}: holds {index.ntotal} vectors, the corpus {store.ntotal}; remove "
                             f"it with `bench cache clear indexes`")
        plan = gpu_plan(self.placement, spec.fp16)
        note = _gpu_note(self.placement, f"index {factory}")
        if note is None and plan is not None and _is_hnsw(index):
            note = f"index {factory} on the CPU: FAISS has no GPU HNSW"
        if note:
            self.notes.append(note)
            log.warning(note)
        elif plan is not None:
            self.index, self._resources = to_gpu(index, plan)
            self.device, self.plan = "cuda", plan
        self.params = self._search_params()

    def _search_params(self) -> dict[str, int]:
        params: dict[str, int] = {}
        if _ivf_of(self.cpu_index) is not None:
            nlist = int(_ivf_of(self.cpu_index).nlist)
            params["nprobe"] = int(min(nlist, self.spec.nprobe or max(1, min(nlist, 32))))
        if _is_hnsw(self.cpu_index):
            params["efSearch"] = int(self.spec.ef_search or 128)
        return params

    @property
    def ntotal(self) -> int:
        return int(self.cpu_index.ntotal)

    def gather(self, rows: np.ndarray | Sequence[int]) -> np.ndarray:
        """The store's (exact) vectors of these rows, whatever the index compresses: bench.stages.DocumentVectors."""
        return self.store.gather(rows)

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kind": self.spec.kind, "factory": self.factory, "exact": False, "params": dict(self.params),
            "rescore": self.spec.rescore, "fp16": self.spec.fp16, "train_rows": self.train_rows,
            "train_seed": self.spec.seed, "device": self.device, "index_path": str(self.path) if self.path else None,
            "index_bytes": self.path.stat().st_size if self.path and self.path.exists() else None,
            **self.store.describe(),
        }
        if self.plan is not None:
            out["gpu"] = self.plan.record()
        if self.notes:
            out["notes"] = list(self.notes)
        return out

    def _apply_params(self) -> None:
        space = faiss.GpuParameterSpace() if self.device == "cuda" else faiss.ParameterSpace()
        for name, value in self.params.items():
            space.set_index_parameter(self.index, name, value)

    def search(self, queries: np.ndarray, k: int, progress: Progress | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
        q = _prepare_queries(queries, self.dim, k)
        n = q.shape[0]
        depth = max(k, self.spec.rescore)
        self._apply_params()
        scores = np.full((n, k), -np.inf, dtype=np.float32)
        rows = np.full((n, k), -1, dtype=np.int64)
        for start in range(0, n, _QUERY_BATCH):
            stop = min(n, start + _QUERY_BATCH)
            d, i = self.index.search(q[start:stop], depth)
            d = np.where(i < 0, -np.inf, d).astype(np.float32)
            if self.spec.rescore:
                d, i = self._rescore(q[start:stop], i)
            else:
                d, i = _order_ties(d, i)
            kk = min(k, d.shape[1])
            scores[start:stop, :kk], rows[start:stop, :kk] = d[:, :kk], i[:, :kk]
            if progress is not None:
                progress(stop - start)
        return scores, rows

    def _rescore(self, q: np.ndarray, cand: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Exact cosine of each candidate (from the store), sorted by (score desc, row asc); -1 rows last."""
        d = np.full(cand.shape, -np.inf, dtype=np.float32)
        for a in range(0, len(q), _GATHER_BATCH):
            c = cand[a : a + _GATHER_BATCH]
            valid = c >= 0
            full = self.store.gather(c)  # zero vectors for -1
            sims = np.einsum("nkd,nd->nk", full, q[a : a + _GATHER_BATCH])
            d[a : a + _GATHER_BATCH] = np.where(valid, sims, -np.inf)
        big = np.where(cand < 0, np.iinfo(np.int64).max, cand)
        order = np.lexsort((big, -d), axis=-1)
        return np.take_along_axis(d, order, axis=1), np.take_along_axis(cand, order, axis=1)


def _is_hnsw(index: faiss.Index) -> bool:
    return "HNSW" in type(_base(index)).__name__


def build_faiss(store: VectorStore, factory: str, train_size: int | None = None, seed: int = 0,
                console: Console | None = None) -> tuple[faiss.Index, int]:
    """A trained, filled FAISS index (inner product) of `factory` over the store; returns it and its training rows."""
    try:
        index = faiss.index_factory(store.dim, factory, faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        raise BenchError(f"--index {factory!r}: FAISS index_factory refused it ({first[-1] if first else exc})"
                         ) from None
    n_train = 0
    if not index.is_trained:
        n_train = train_rows_for(index, store.ntotal, train_size)
        sample = training_sample(store.ntotal, n_train, seed)
        if console is not None:
            console.print(f"[dim]index {factory}: training on {n_train} sampled rows (seed {seed})[/]",
                          highlight=False)
        index.train(store.gather(sample))
    for _, block in store.blocks():
        index.add(block)
    return index, n_train


def train_rows_for(index: faiss.Index, ntotal: int, train_size: int | None) -> int:
    return int(min(ntotal, train_size)) if train_size else default_train_size(index, ntotal)


def training_sample(ntotal: int, n: int, seed: int) -> np.ndarray:
    """The rows an approximate index trains on: n distinct rows drawn with numpy's PCG64 from `seed`, sorted."""
    if n >= ntotal:
        return np.arange(ntotal)
    return np.sort(np.random.default_rng([seed, 12]).choice(ntotal, size=n, replace=False))


def index_cache_key(store: VectorStore, factory: str, n_train: int, seed: int) -> str:
    sample = training_sample(store.ntotal, n_train, seed) if n_train else np.zeros(0, dtype=np.int64)
    return stable_hash(["index", INDEX_FORMAT, store.key, store.ntotal, store.dim, factory, n_train, seed,
                        _cache.array_hash(sample)], length=32)


def open_index(spec: IndexSpec, store: VectorStore, placement: Placement | str = "cpu",
               console: Console | None = None) -> FlatIndex | FaissIndex:
    """The index a spec asks for over a store: flat searches the store itself; other kinds load or build a cached
    FAISS index keyed by (store, factory string, training sample)."""
    if spec.exact:
        return FlatIndex(store, placement, fp16=spec.fp16)
    factory = factory_string(spec.kind, store.dim, store.ntotal)
    probe = _probe(factory, store.dim)
    n_train = 0 if probe.is_trained else train_rows_for(probe, store.ntotal, spec.train_size)
    key = index_cache_key(store, factory, n_train, spec.seed)
    path = cache_root() / "indexes" / f"{key}.faiss"
    built: dict[str, Any] = {}

    def build(tmp: Path) -> None:
        import time

        t = time.perf_counter()
        index, _ = build_faiss(store, factory, n_train or None, spec.seed, console)
        built["seconds"] = time.perf_counter() - t
        faiss.write_index(index, str(tmp))

    def load(p: Path) -> faiss.Index:
        index = faiss.read_index(str(p))
        if index.ntotal != store.ntotal or index.d != store.dim:
            raise DamagedEntry(f"holds {index.ntotal} × {index.d} vectors, the corpus is {store.ntotal} × {store.dim}")
        return index

    loader = getattr(_cache, "load_or_build", None)
    if loader is not None:
        index = loader(path, build, load, packages=("faiss-cpu", "faiss-gpu-cu12"),
                       info={"factory": factory, "store": store.key, "train_rows": n_train, "seed": spec.seed})
    elif path.exists():
        index = load(path)
    else:
        with atomic_path(path) as tmp:
            build(tmp)
        index = load(path)
    return FaissIndex(index, store, spec, factory, placement, train_rows=n_train, path=path,
                      build_seconds=built.get("seconds"))


def _probe(factory: str, dim: int) -> faiss.Index:
    try:
        return faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as exc:
        lines = str(exc).strip().splitlines()
        raise BenchError(f"--index {factory!r}: not a kind (flat, hnsw, ivf, ivfpq) and FAISS index_factory refused "
                         f"it ({lines[-1] if lines else exc})") from None


# ------------------------------------------------------------------------------------------------ corpus stores


def corpus_store(corpus: Any, encoder: Any, spec: IndexSpec | None = None, key: str = "") -> VectorStore:
    """The vector store of a task's corpus for a document encoder (None: the task's own vectors, kept in memory).

    Streaming encoders (bench.encode.CorpusEncoder) encode missing shards, and the store maps the shards: the one
    copy of the embeddings on disk. `spec.fp16` stores float16 (shards written so, or the in-memory array)."""
    fp16 = bool(spec and spec.fp16)
    storage = "float16" if fp16 else "float32"
    if encoder is None:
        if corpus.vectors is None:
            raise BenchError("a text corpus needs a document encoder")
        return ArrayStore(corpus.vectors, key=key or f"vectors:{corpus.fingerprint}", storage=storage)
    shards = getattr(encoder, "encode_corpus_shards", None)
    if shards is not None and hasattr(encoder, "shard_store"):
        if fp16 and hasattr(encoder, "storage"):
            encoder.storage = "float16"
        for _ in shards(corpus):  # encodes the shards not yet on disk; the blocks themselves are not kept
            pass
        return MappedStore.from_shard_store(encoder.shard_store(corpus))
    return ArrayStore(encoder.encode_corpus(corpus), key=key or f"{encoder.cache_key}:{corpus.fingerprint}",
                      storage=storage)


def _grouped(blocks: Iterator[tuple[int, np.ndarray]], target_bytes: int) -> Iterator[tuple[int, np.ndarray]]:
    """Consecutive blocks joined until each reaches `target_bytes`: each FAISS call has a fixed cost (measured on
    200k × 384, 500 queries: 8,192-row blocks 1.27× the time of one call, 65,536-row blocks 1.12×)."""
    parts: list[np.ndarray] = []
    first = 0
    size = 0
    for start, block in blocks:
        if not parts:
            first = start
        parts.append(block)
        size += block.nbytes
        if size >= target_bytes:
            yield first, parts[0] if len(parts) == 1 else np.concatenate(parts)
            parts, size = [], 0
    if parts:
        yield first, parts[0] if len(parts) == 1 else np.concatenate(parts)


def _order_ties(d: np.ndarray, i: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sort each row by score descending, then row id ascending.

    Only rows that are not already strictly descending (a tie, or FAISS order off) are sorted: the others are
    already in that order, and skipping them keeps the harness's search as fast as a bare FAISS search."""
    todo = np.flatnonzero((d[:, 1:] >= d[:, :-1]).any(axis=1))
    if len(todo) == 0:
        return d, i
    d, i = d.copy(), i.copy()
    big = np.where(i[todo] < 0, np.iinfo(np.int64).max, i[todo])
    order = np.lexsort((big, -d[todo]), axis=-1)
    d[todo] = np.take_along_axis(d[todo], order, axis=1)
    i[todo] = np.take_along_axis(i[todo], order, axis=1)
    return d, i


__all__ = [
    "ArrayStore", "FaissIndex", "FlatIndex", "GpuPlan", "Index", "IndexSpec", "KINDS", "MappedStore", "VectorStore",
    "build_faiss", "cloner_options", "corpus_store", "factory_string", "gpu_plan", "index_cache_key",
    "l2_normalise", "open_index", "to_gpu", "training_sample",
]
