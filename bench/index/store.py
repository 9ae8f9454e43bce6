"""Vector stores: the L2-normalised document vectors an index searches, and the one copy of them.

`ArrayStore` holds them in memory (vector tasks); `MappedStore` maps the encoder's embedding shards (text corpora;
bench/index/encode.py): nothing is read until a block is searched, and `gather(rows)` reads only the rows asked for
(MMR, training negatives, target diversity). `corpus_store` gives a task's corpus its store.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bench.distributed import World
from bench.errors import BenchError
from bench.index.spec import IndexSpec
from bench.storage import cache as _cache
from bench.storage.cache import Recipe


def l2_normalise(x: np.ndarray) -> np.ndarray:
    """A float32, C-contiguous, row-normalised copy (zero rows stay zero)."""
    import faiss

    out = np.array(x, dtype=np.float32, order="C", copy=True)
    if out.ndim != 2:
        raise BenchError(f"expected a 2-d array of vectors, got shape {out.shape}")
    faiss.normalize_L2(out)
    return out


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
        give zero vectors (bench.systems.stages.DocumentVectors)."""
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
        """The store of a complete bench.index.encode.ShardStore."""
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



def corpus_store(corpus: Any, encoder: Any, spec: IndexSpec | None = None, key: str = "",
                 recipe: Recipe | None = None, world: World | None = None) -> VectorStore:
    """The vector store of a task's corpus for a document encoder (None: the task's own vectors, kept in memory).

    Streaming encoders (bench.index.encode.CorpusEncoder) encode missing shards, and the store maps the shards: the
    one copy of the embeddings on disk. `spec.fp16` stores float16 (shards written so, or the in-memory array);
    `recipe` goes into the shards' manifests. Under torchrun (`world`, bench/distributed.py) the ranks share the
    shards out, and every rank maps all of them once the last is written."""
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
        encoded = shards(corpus, recipe=recipe, world=world) if world is not None else shards(corpus, recipe=recipe)
        for _ in encoded:  # encodes the shards not on disk; the blocks themselves are not kept
            pass
        return MappedStore.from_shard_store(encoder.shard_store(corpus))
    return ArrayStore(encoder.encode_corpus(corpus), key=key or f"{encoder.cache_key}:{corpus.fingerprint}",
                      storage=storage)

