"""Maximal marginal relevance (MMR) re-ranking of a system's top candidates.

Greedy selection from the candidate set C of a query (its top `depth` = 500 base candidates); at each step pick

    d* = argmax_{d ∈ C \\ S}  λ · sim(d, q) − (1 − λ) · max(0, max_{s ∈ S} sim(d, s))

and append it to S. Source: Carbonell & Goldstein, "The use of MMR, diversity-based
reranking for reordering documents and producing summaries", SIGIR 1998.

- sim(d, s) is the cosine between the document encoder's embeddings of d and s (the run's normalised document
  vectors, fetched with `gather(rows)`, never the whole matrix);
- sim(d, q) is the cosine between d and the query vector; for a multi-vector system (AMER, oracle, sub-queries)
  q is the query's set of vectors and sim(d, q) = max_j cos(d, q_j): a document is as relevant as it is to the
  closest of the query's vectors (CombMAX's view of relevance);
- the redundancy term is clamped at 0 (our choice; the paper leaves it open): a document dissimilar to every
  selected one (negative cosine) carries no redundancy, it gets no bonus, and an empty S costs nothing. So the
  score a selected document keeps, its MMR value at selection, never increases along the list (the redundancy of
  every candidate only grows), and equal values are broken by the lower corpus row;
- `variant=reference` is the reference implementation's form (docs/fidelity.md): the relevance is sim(d, q) divided by
  the query's top candidate relevance max_{d' ∈ C} sim(d', q) (by 1 when that is ≤ 0), and the redundancy is not
  clamped, so a document unlike every selected one gains from it. The redundancy of an empty S is then taken as −1,
  the least a cosine can be: the first pick is the same, and the selected values still never increase;
- λ = 1 has no diversity term: by definition the base system's own ranking, returned unchanged (scores included);
- λ is tuned on validation queries among `grid` (default 0.5, 0.75, 0.9) by the mean of `metric` over the re-ranked
  lists (default: MRECALL at the run's smallest cutoff; `-r mmr.metric=Recall@10` to choose); among equal values the
  largest λ (the smallest change to the base ranking) wins. `-r mmr.λ=0.75` (or `mmr.lam=0.75`) fixes λ and skips
  tuning.

Vectorised over queries and candidates; the only Python loop is over the selection steps. Queries go in small
batches (`_BATCH_BYTES` of candidate vectors, a few MB): each step reads the batch's candidate vectors once, and a
batch that stays in the CPU cache is what makes a step fast (benchmarks/mmr.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from bench.errors import BenchError
from bench.metrics import parse_metric
from bench.registry import register_reranker
from bench.systems.records import Candidates, DocumentVectors, QueryVectors
from bench.systems.stages import Reranker, TuningData

if TYPE_CHECKING:
    from bench.systems.context import RunContext

_BATCH_BYTES = 4 << 20
VARIANTS = ("harness", "reference")


@dataclass(frozen=True)
class MMRParams:
    lam: float | None = field(default=None, metadata={"alias": "λ"})  # None: tuned on validation queries
    grid: tuple[float, ...] = (0.5, 0.75, 0.9)
    depth: int = 500  # base candidates re-ranked per query
    metric: str = ""  # what λ is tuned for, e.g. Recall@10; "" = MRECALL at the run's smallest cutoff
    variant: str = "harness"  # harness: raw cosine, redundancy clamped at 0; reference: relevance ÷ top, no clamp

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise ValueError(f"variant must be one of {', '.join(VARIANTS)}, got {self.variant!r}")
        for v in (self.grid if self.lam is None else (self.lam,)):
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"λ must be in [0, 1], got {v}")
        if not self.grid:
            raise ValueError("grid must hold at least one λ")
        if self.depth < 1:
            raise ValueError(f"depth must be ≥ 1, got {self.depth}")
        if self.metric:
            parse_metric(self.metric)  # a BenchError naming the known measures


def _normalise(x: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return np.where(norm > 0, x / np.where(norm > 0, norm, 1), 0).astype(np.float32)


def query_similarity(doc_vecs: np.ndarray, queries: QueryVectors, idx: np.ndarray) -> np.ndarray:
    """sim(d, q) = max over the query's present vectors of cos(d, q_j): float32 (b, C) for queries `idx`."""
    q = _normalise(queries.vectors[idx])  # (b, m, d)
    sims = np.matmul(doc_vecs, q.transpose(0, 2, 1))  # (b, C, m)
    sims = np.where(queries.mask[idx][:, None, :], sims, -np.inf)
    return sims.max(axis=2).astype(np.float32)


def relevance(doc_vecs: np.ndarray, queries: QueryVectors, idx: np.ndarray, valid: np.ndarray,
              variant: str = "harness") -> tuple[np.ndarray, float]:
    """The relevance term sim(d, q) of candidates (b, C) and the redundancy of an empty selection: the raw cosine
    and 0 (harness: the redundancy is clamped at 0), or the cosine ÷ the query's top candidate cosine (1 when that
    is ≤ 0) and −1 (reference: no clamp; −1 is the least a cosine can be)."""
    sim = query_similarity(doc_vecs, queries, idx)
    if variant == "harness":
        return sim, 0.0
    top = np.where(valid, sim, -np.inf).max(axis=1, keepdims=True)
    return (sim / np.where(top > 0, top, np.float32(1))).astype(np.float32), -1.0


def mmr(cands: Candidates, queries: QueryVectors, docs: DocumentVectors, lam: float,
        out_depth: int | None = None, variant: str = "harness") -> Candidates:
    """MMR-re-ranked candidates (the top `out_depth` of the greedy order; all candidates by default)."""
    if lam == 1.0:
        return cands.truncate(out_depth) if out_depth else cands
    n, c = cands.n, cands.k
    keep = min(c, out_depth or c)
    out_rows = np.full((n, keep), -1, dtype=np.int64)
    out_scores = np.full((n, keep), -np.inf, dtype=np.float32)
    batch = max(1, _BATCH_BYTES // max(1, c * docs.dim * 4))
    lam32, div32 = np.float32(lam), np.float32(1.0 - lam)
    big = np.iinfo(np.int64).max
    for start in range(0, n, batch):
        idx = np.arange(start, min(n, start + batch))
        rows = cands.rows[idx]  # (b, C)
        valid = rows >= 0
        vecs = docs.gather(rows)  # (b, C, d), zeros on padding
        sim, empty = relevance(vecs, queries, idx, valid, variant)
        rel = lam32 * sim  # (b, C)
        max_sim = np.full(rows.shape, empty, dtype=np.float32)  # a running max from `empty`: 0 is the clamp
        taken = ~valid
        b = len(idx)
        ar = np.arange(b)
        for step in range(keep):
            value = np.where(taken, -np.inf, rel - div32 * max_sim).astype(np.float32)
            best = value.max(axis=1)
            live = np.isfinite(best)
            if not live.any():
                break
            pick = np.where(value == best[:, None], rows, big).argmin(axis=1)  # ties → lower corpus row
            out_rows[idx[live], step] = rows[ar[live], pick[live]]
            out_scores[idx[live], step] = best[live]
            taken[ar[live], pick[live]] = True
            chosen = vecs[ar, pick]  # (b, d)
            sim_new = np.matmul(vecs, chosen[:, :, None])[:, :, 0]  # (b, C): batched BLAS matrix-vector products
            max_sim = np.where(live[:, None], np.maximum(max_sim, sim_new), max_sim)
    return Candidates(out_rows, out_scores)


@register_reranker(
    "mmr",
    description="maximal marginal relevance over the top-500 candidates: λ·sim(d,q) − (1−λ)·max sim(d, selected), "
                "document-encoder cosine; λ tuned on validation queries (Carbonell & Goldstein 1998)",
    params=MMRParams,
)
class MMRReranker(Reranker):
    needs_vectors = True

    def __init__(self, params: MMRParams | None, name: str) -> None:
        super().__init__(params or MMRParams(), name)
        self.depth = self.params.depth
        self.wants_tuning = self.params.lam is None  # a λ given by the user is not tuned
        self.lam: float | None = self.params.lam
        self.tuning: dict[str, Any] = {}

    def tune(self, data: TuningData, docs: DocumentVectors | None, ctx: RunContext,
             keep: int | None = None) -> dict[str, Any]:
        if data.queries is None or docs is None:
            raise BenchError("mmr needs query and document vectors to tune λ")
        scores: dict[float, float] = {}
        for lam in self.params.grid:
            scores[float(lam)] = data.evaluate(mmr(data.candidates, data.queries, docs, float(lam), keep,
                                                   self.params.variant))
        best = max(scores.values())
        self.lam = max(lam for lam, v in scores.items() if v == best)
        self.tuning = {"lambda": self.lam, "metric": data.metric, "grid": {str(k): v for k, v in scores.items()}}
        return dict(self.tuning)

    def rerank(self, cands: Candidates, queries: QueryVectors | None, docs: DocumentVectors | None,
               ctx: RunContext, keep: int | None = None) -> Candidates:
        if queries is None or docs is None:
            raise BenchError("re-ranker 'mmr' needs document embeddings: the retriever has none (e.g. bm25)")
        if self.lam is None:
            raise BenchError("mmr: λ was neither given (-r mmr.λ=…) nor tuned")
        return mmr(cands.truncate(self.depth), queries, docs, self.lam, keep, self.params.variant)

    def info(self) -> dict[str, Any]:
        return {"lambda": self.lam, "q": "max over the query's vectors of cos(d, q_j)", "variant": self.params.variant}
