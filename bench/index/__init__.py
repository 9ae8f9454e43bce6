"""Corpus indexes: one small protocol, exact and approximate kinds, and one copy of the document vectors.

- A **vector store** (store.py) holds the L2-normalised document vectors: `ArrayStore` in memory (vector tasks),
  `MappedStore` over the encoder's memory-mapped embedding shards (text corpora; encode.py). The shards are the one
  copy of a text corpus's embeddings on disk; `gather(rows)` reads rows for MMR, training negatives and diversity.
- An **index** (base.py) answers `search(queries, k) -> (scores, rows)`: top-k by cosine (inner product of normalised
  vectors), best first, ties by the lower corpus row, padded with row -1 / score -inf past the corpus size. It has
  `dim`, `ntotal`, `store` and `describe()` (recorded with results).
- Kinds (`--index`, spec.py): `flat` (flat.py: exact, FAISS's brute-force inner product over the store block by
  block, so a corpus larger than RAM is searched from its memory-mapped shards), `hnsw` (HNSW32), `ivf`
  (IVF<nlist>,Flat), `ivfpq` (IVF<nlist>,PQ<d/8>x8), or any FAISS `index_factory` string (approximate.py: trained
  on a seeded sample, cached, `rescore=N` re-ranks their top N by the exact cosine from the store).
- Placement (gpu.py, bench/device.py): on a GPU with faiss-gpu the index is cloned to every GPU of the placement
  (sharded when there are several), in float16 on request; HNSW has no GPU version and stays on the CPU (noted in
  `describe()`).
- The lexical index (bm25.py) and corpus encoding (encode.py) live here too: both turn a corpus into what is searched.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console

from bench.device import Placement
from bench.errors import BenchError, DamagedEntry
from bench.index.approximate import FaissIndex, build_faiss, index_cache_key, train_rows_for, training_sample
from bench.index.base import Index, IndexBase, Progress
from bench.index.flat import FlatIndex
from bench.index.gpu import GpuPlan, cloner_options, gpu_available, gpu_plan, to_gpu
from bench.index.spec import KINDS, IndexSpec, factory_string
from bench.index.store import ArrayStore, MappedStore, VectorStore, corpus_store, l2_normalise
from bench.storage.cache import Recipe, cache_root, load_or_build

if TYPE_CHECKING:
    import faiss  # imported where used: `bench list` and `--help` load no FAISS


def open_index(spec: IndexSpec, store: VectorStore, placement: Placement | str = "cpu",
               console: Console | None = None, recipe: Recipe | None = None) -> FlatIndex | FaissIndex:
    """The index a spec asks for over a store: flat searches the store itself; other kinds load or build a cached
    FAISS index keyed by (store, factory string, training sample)."""
    import faiss

    if spec.exact:
        return FlatIndex(store, placement, fp16=spec.fp16)
    factory = factory_string(spec.kind, store.dim, store.ntotal)
    probe = _probe(factory, store.dim)
    n_train = 0 if probe.is_trained else train_rows_for(probe, store.ntotal, spec.train_size)
    key = index_cache_key(store, factory, n_train, spec.seed)
    path = cache_root() / "indexes" / f"{key}.faiss"
    built: dict[str, Any] = {}

    def build(tmp: Path) -> None:
        t = time.perf_counter()
        index, _ = build_faiss(store, factory, n_train or None, spec.seed, console)
        built["seconds"] = time.perf_counter() - t
        faiss.write_index(index, str(tmp))

    def load(p: Path) -> faiss.Index:
        index = faiss.read_index(str(p))
        if index.ntotal != store.ntotal or index.d != store.dim:
            raise DamagedEntry(f"holds {index.ntotal} × {index.d} vectors, the corpus is {store.ntotal} × {store.dim}")
        return index

    index = load_or_build(path, build, load, packages=("faiss-cpu", "faiss-gpu-cu12"), recipe=recipe,
                          info={"factory": factory, "store": store.key, "train_rows": n_train, "seed": spec.seed})
    return FaissIndex(index, store, spec, factory, placement, train_rows=n_train, path=path,
                      build_seconds=built.get("seconds"))


def _probe(factory: str, dim: int) -> faiss.Index:
    import faiss

    try:
        return faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as exc:
        lines = str(exc).strip().splitlines()
        raise BenchError(f"--index {factory!r}: not a kind (flat, hnsw, ivf, ivfpq) and FAISS index_factory refused "
                         f"it ({lines[-1] if lines else exc})") from None


__all__ = [
    "KINDS", "ArrayStore", "FaissIndex", "FlatIndex", "GpuPlan", "Index", "IndexBase", "IndexSpec", "MappedStore",
    "Progress", "VectorStore", "build_faiss", "cloner_options", "corpus_store", "factory_string", "gpu_available",
    "gpu_plan", "index_cache_key", "l2_normalise", "open_index", "to_gpu", "training_sample",
]
