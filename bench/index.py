"""Exact cosine search over a corpus with FAISS (inner product on L2-normalised vectors).

Scores that tie are ordered by the lower corpus row first, so a ranking never depends on FAISS's heap order. The
index goes to the GPU when faiss was built with GPU support and a GPU is present, and stays on the CPU otherwise.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import faiss
import numpy as np

from bench.atomic import atomic_path
from bench.cache import cache_root
from bench.errors import BenchError

log = logging.getLogger(__name__)

_TIE_MARGIN = 8
_BATCH = 4096


def l2_normalise(x: np.ndarray) -> np.ndarray:
    """A float32, C-contiguous, row-normalised copy (zero rows stay zero)."""
    out = np.array(x, dtype=np.float32, order="C", copy=True)
    if out.ndim != 2:
        raise BenchError(f"expected a 2-d array of vectors, got shape {out.shape}")
    faiss.normalize_L2(out)
    return out


def gpu_available() -> bool:
    return hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0


class FlatIndex:
    """Exact inner-product search over L2-normalised document vectors (cosine similarity)."""

    def __init__(self, index: faiss.Index, device: str = "auto") -> None:
        self.cpu_index = index
        self.dim = index.d
        self.path: Path | None = None  # the cache file it was loaded from or saved to, for error messages
        self.device = "cpu"
        self.index = index
        if device in ("auto", "cuda") and gpu_available():
            self._resources = faiss.StandardGpuResources()
            self.index = faiss.index_cpu_to_gpu(self._resources, 0, index)
            self.device = "cuda"
        elif device == "cuda":
            raise BenchError("device=cuda asked for, but faiss has no GPU support or sees no GPU")

    @classmethod
    def from_embeddings(cls, embeddings: np.ndarray, device: str = "auto", normalised: bool = False) -> FlatIndex:
        vecs = np.ascontiguousarray(embeddings, dtype=np.float32) if normalised else l2_normalise(embeddings)
        index = faiss.IndexFlatIP(vecs.shape[1])
        index.add(vecs)
        return cls(index, device)

    @classmethod
    def from_blocks(cls, blocks: Iterable[np.ndarray], device: str = "auto") -> FlatIndex:
        """Build from row blocks (e.g. embedding shards) added one at a time: one copy of the matrix, in the index."""
        index: faiss.Index | None = None
        start = 0
        for block in blocks:
            vecs = l2_normalise(block)
            if index is None:
                index = faiss.IndexFlatIP(vecs.shape[1])
            elif vecs.shape[1] != index.d:
                raise BenchError(
                    f"embedding rows {start}–{start + len(vecs) - 1}, field 'dim': {vecs.shape[1]}-dim vectors, but "
                    f"the index being built holds {index.d}-dim vectors"
                )
            index.add(vecs)
            start += len(vecs)
        if index is None:
            raise BenchError("no embeddings to index")
        return cls(index, device)

    @classmethod
    def cached(
        cls, key: str, build_embeddings: Callable[[], np.ndarray | Iterable[np.ndarray]], device: str = "auto"
    ) -> FlatIndex:
        """Load the index stored under `key` in the cache, or build it from `build_embeddings()` and store it.

        `build_embeddings()` returns the whole matrix or an iterable of row blocks (added one at a time)."""
        path = cache_root() / "indexes" / f"{key}.faiss"
        if path.exists():
            loaded = cls(faiss.read_index(str(path)), device)
            loaded.path = path
            return loaded
        emb = build_embeddings()
        built = cls.from_embeddings(emb, device="cpu") if isinstance(emb, np.ndarray) else cls.from_blocks(emb, "cpu")
        with atomic_path(path) as tmp:
            faiss.write_index(built.cpu_index, str(tmp))
        out = cls(built.cpu_index, device)
        out.path = path
        return out

    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal)

    def vectors(self) -> np.ndarray:
        """The stored (normalised) document vectors: a read-only view into the index, not a copy."""
        xb = self.cpu_index.get_xb()  # type: ignore[attr-defined]
        raw = faiss.rev_swig_ptr(xb, self.ntotal * self.dim).reshape(self.ntotal, self.dim)
        view = np.asarray(_Owned(raw, self.cpu_index))  # the view's base holds the index: no read of freed memory
        view.flags.writeable = False
        return view

    def search(
        self, queries: np.ndarray, k: int, progress: Callable[[int], None] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (scores, rows) per query, best first, ties by lower row; rows past the corpus size are -1."""
        if k <= 0:
            raise BenchError(f"k must be > 0, got {k}")
        q = np.asarray(queries, dtype=np.float32)
        if q.ndim != 2 or q.shape[1] != self.dim:
            raise BenchError(f"query vectors have shape {q.shape}, but the index holds {self.dim}-dim vectors")
        q = l2_normalise(q)
        n = q.shape[0]
        k_eff = min(k, self.ntotal)
        depth = min(self.ntotal, k_eff + _TIE_MARGIN)
        scores = np.full((n, k), -np.inf, dtype=np.float32)
        rows = np.full((n, k), -1, dtype=np.int64)
        for start in range(0, n, _BATCH):
            stop = min(n, start + _BATCH)
            d, i = self.index.search(q[start:stop], depth)
            d, i = _order_ties(d, i)
            # A tie that runs past the margin could hide a lower row: redo those rows exactly.
            crossing: Sequence[int] = (
                np.flatnonzero(d[:, k_eff - 1] == d[:, depth - 1]).tolist() if depth < self.ntotal else []
            )
            for r in crossing:
                d[r, :k_eff], i[r, :k_eff] = self._exact_row(q[start + r], k_eff)
            scores[start:stop, :k_eff] = d[:, :k_eff]
            rows[start:stop, :k_eff] = i[:, :k_eff]
            if progress is not None:
                progress(stop - start)
        return scores, rows

    def _exact_row(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        sims = self.vectors() @ q
        order = np.lexsort((np.arange(len(sims)), -sims))[:k]
        return sims[order], order

    def save(self, path: str | Path) -> None:
        with atomic_path(path) as tmp:
            faiss.write_index(self.cpu_index, str(tmp))


class _Owned:
    """Exposes an array that points into memory owned by `owner`, and keeps `owner` alive while the array lives."""

    def __init__(self, array: np.ndarray, owner: object) -> None:
        self.__array_interface__ = array.__array_interface__
        self._array = array
        self._owner = owner


def _order_ties(d: np.ndarray, i: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sort each row by score descending, then row id ascending.

    Only rows that are not already strictly descending (a tie, or FAISS order off) are sorted: the others are
    already in that order, and skipping them keeps the harness's search as fast as a bare FAISS search."""
    todo = np.flatnonzero((d[:, 1:] >= d[:, :-1]).any(axis=1))
    if len(todo) == 0:
        return d, i
    d, i = d.copy(), i.copy()
    order = np.lexsort((i[todo], -d[todo]), axis=-1)
    d[todo] = np.take_along_axis(d[todo], order, axis=1)
    i[todo] = np.take_along_axis(i[todo], order, axis=1)
    return d, i
