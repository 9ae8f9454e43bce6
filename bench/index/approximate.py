"""Approximate kinds: any FAISS index_factory index (inner product) over a store — trained on a seeded sample,
cached under `<cache>/indexes/` keyed by (store, factory string, training sample), searched with nprobe / efSearch
set per search, optionally re-scored exactly from the store (`rescore=N`)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from rich.console import Console
from rich.markup import escape

from bench.device import Placement
from bench.device import resolve as resolve_placement
from bench.errors import BenchError
from bench.index.base import QUERY_BATCH, IndexBase, Progress, order_ties, prepare_queries
from bench.index.gpu import GpuPlan, gpu_note, gpu_plan, to_gpu
from bench.index.spec import IndexSpec, _base, _ivf_of, check_trainable, default_train_size
from bench.index.store import VectorStore
from bench.storage import cache as _cache
from bench.storage.cache import stable_hash

if TYPE_CHECKING:
    import faiss  # imported where used: `bench list` and `--help` load no FAISS

log = logging.getLogger(__name__)

INDEX_FORMAT = 2
_GATHER_BATCH = 256


class FaissIndex(IndexBase):
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
        note = gpu_note(self.placement, f"index {factory}")
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

    def describe(self) -> dict[str, Any]:
        return self._record({
            "kind": self.spec.kind, "factory": self.factory, "exact": False, "params": dict(self.params),
            "rescore": self.spec.rescore, "fp16": self.spec.fp16, "train_rows": self.train_rows,
            "train_seed": self.spec.seed, "device": self.device, "index_path": str(self.path) if self.path else None,
            "index_bytes": self.path.stat().st_size if self.path and self.path.exists() else None,
        })

    def _apply_params(self) -> None:
        import faiss

        space = faiss.GpuParameterSpace() if self.device == "cuda" else faiss.ParameterSpace()
        for name, value in self.params.items():
            space.set_index_parameter(self.index, name, value)

    def search(self, queries: np.ndarray, k: int, progress: Progress | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
        q = prepare_queries(queries, self.dim, k)
        n = q.shape[0]
        depth = max(k, self.spec.rescore)
        self._apply_params()
        scores = np.full((n, k), -np.inf, dtype=np.float32)
        rows = np.full((n, k), -1, dtype=np.int64)
        for start in range(0, n, QUERY_BATCH):
            stop = min(n, start + QUERY_BATCH)
            d, i = self.index.search(q[start:stop], depth)
            d = np.where(i < 0, -np.inf, d).astype(np.float32)
            if self.spec.rescore:
                d, i = self._rescore(q[start:stop], i)
            else:
                d, i = order_ties(d, i)
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
    import faiss

    try:
        index = faiss.index_factory(store.dim, factory, faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        raise BenchError(f"--index {factory!r}: FAISS index_factory refused it ({first[-1] if first else exc})"
                         ) from None
    n_train = 0
    if not index.is_trained:
        n_train = train_rows_for(index, store.ntotal, train_size)
        check_trainable(IndexSpec(factory, train_size=n_train), store.ntotal)  # else a FAISS traceback
        sample = training_sample(store.ntotal, n_train, seed)
        if console is not None:
            console.print(f"[dim]index {escape(factory)}: training on {n_train} sampled rows (seed {seed})[/]",
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

