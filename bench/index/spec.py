"""What `--index` asks for (`IndexSpec`) and how a kind name becomes a FAISS index_factory string with its defaults."""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from bench.errors import BenchError
from bench.storage.cache import stable_hash

if TYPE_CHECKING:
    import faiss  # imported where used: `bench list` and `--help` load no FAISS

KINDS = ("flat", "hnsw", "ivf", "ivfpq")


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


_IVF = re.compile(r"IVF(\d+)")
_QUANTISER = re.compile(r"(?:PQ|RQ|LSQ|IMI2x)(\d+)(?:x(\d+))?")


def training_needs(factory: str) -> tuple[int, str] | None:
    """The fewest training vectors a FAISS index_factory string can be trained on, and why (None: it needs none, or
    any number). k-means needs at least as many points as centroids: an IVF layer of n lists needs n, an n-bit
    product / residual quantiser 2^n per sub-vector (256 for the usual 8 bits)."""
    needs: list[tuple[int, str]] = []
    for m in _IVF.finditer(factory):
        lists = int(m[1])
        needs.append((lists, f"its IVF layer clusters the corpus into {lists:,} lists by k-means"))
    for m in _QUANTISER.finditer(factory):
        bits = int(m[1]) if m[0].startswith("IMI") else int(m[2]) if m[2] else 8
        needs.append((2 ** bits, f"its {bits}-bit quantiser learns {2 ** bits} centroids per sub-vector"))
    return max(needs) if needs else None


def check_trainable(spec: IndexSpec, ntotal: int, corpus: str = "the corpus") -> None:
    """Refuse, before any work, an approximate index that cannot be trained on this corpus (FAISS would stop with
    a traceback after the corpus is encoded): its training needs more vectors than the corpus (or --train-size)
    offers. Refused rather than replaced by an exact index, so a result never records an index it did not use."""
    if spec.exact:
        return
    factory = factory_string(spec.kind, 8, ntotal)  # the dimension shapes PQ's sub-vectors, not what they need
    need = training_needs(factory)
    have = min(ntotal, spec.train_size) if spec.train_size else ntotal
    if need is None or have >= need[0]:
        return
    shown = spec.kind if spec.kind.strip().lower() in KINDS else repr(spec.kind)
    head = f"--index {shown} cannot be trained here: {need[1]} and needs at least {need[0]:,} training vectors"
    if have < ntotal:
        raise BenchError(f"{head}, but train_size={spec.train_size} gives it {have:,}; raise train_size")
    raise BenchError(f"{head}, but {corpus} has {ntotal:,} documents; use a corpus of at least {need[0]:,} documents, "
                     "or --index flat (exact) or --index hnsw (no training)")


def default_train_size(index: faiss.Index, ntotal: int) -> int:
    ivf = _ivf_of(index)
    want = 64 * ivf.nlist if ivf is not None else 0
    if "PQ" in type(index).__name__ or "PQ" in type(_base(index)).__name__:
        want = max(want, 256 * 39)  # 8-bit PQ codebooks: 256 centroids per sub-quantizer
    return int(min(ntotal, max(want, 10_000)))


def _base(index: faiss.Index) -> faiss.Index:
    import faiss

    try:
        return faiss.downcast_index(index)
    except Exception:
        return index


def _ivf_of(index: faiss.Index) -> Any:
    import faiss

    try:
        return faiss.extract_index_ivf(index)
    except Exception:
        return None

