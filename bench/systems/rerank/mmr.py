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

How it runs (benchmarks/mmr.py): a selection step compares every candidate with the one just picked, i.e. reads a
row of the query's Gram matrix V·Vᵀ (V its C × d candidate vectors). So the products leave the selection loop: a
chunk of queries is gathered once (`gather(rows)`), rows of its Gram matrices are computed by batched float32
matrix products (compute-bound, unlike one matrix-vector product per step, which is bound by memory), in order of
relevance and only as far as the picks reach (`_LazyGram`), and a step is a row lookup plus a few elementwise
operations on (queries × C) arrays: every query of the chunk advances at once, with no Python loop over queries.
The running MMR value is kept, not recomputed: λ·sim(d, q) − (1 − λ)·max(a, b) is the smaller of its values for a
and for b, exactly so in floating point (rounding is monotone). Candidates are ordered by corpus row inside each
query, so the first maximum (`argmax`) is the lower row among equal values. Tuning runs every λ of the grid on the
same gathered vectors and Gram rows (`mmr_many`).
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

_GRAM_BYTES = 32 << 20  # the similarities of one chunk of queries (C × C float32 each)
_BLOCK = 128  # candidates whose similarities to every other candidate are computed together
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
    return mmr_many(cands, queries, docs, (lam,), out_depth, variant)[0]


def mmr_many(cands: Candidates, queries: QueryVectors, docs: DocumentVectors, lams: tuple[float, ...],
             out_depth: int | None = None, variant: str = "harness") -> list[Candidates]:
    """`mmr` for each λ of `lams`, sharing the gathered vectors and similarities (what tuning over a grid runs)."""
    n, c = cands.n, cands.k
    keep = min(c, out_depth or c)
    base = cands.truncate(out_depth) if out_depth else cands
    outs = [(np.full((n, keep), -1, dtype=np.int64), np.full((n, keep), -np.inf, dtype=np.float32)) for _ in lams]
    todo = [i for i, lam in enumerate(lams) if lam != 1.0]  # λ = 1: the base ranking itself
    if todo and n and c:
        order = np.argsort(cands.rows, axis=1, kind="stable")  # by corpus row: argmax's first maximum = lower row
        chunk = max(1, _GRAM_BYTES // (c * c * 4))
        for start in range(0, n, chunk):
            idx = np.arange(start, min(n, start + chunk))
            perm = order[idx]
            rows = np.take_along_axis(cands.rows[idx], perm, axis=1)  # (b, C), rows ascending
            vecs = docs.gather(cands.rows[idx])  # (b, C, d) gathered once, zeros on padding
            # relevance on the gathered order: a float32 product's last bit can depend on the row's position
            sim, empty = relevance(vecs, queries, idx, cands.rows[idx] >= 0, variant)
            sim_q = np.take_along_axis(sim, perm, axis=1)
            gram = _LazyGram(vecs[np.arange(len(idx))[:, None], perm], sim_q)
            for i in todo:
                outs[i][0][idx], outs[i][1][idx] = _select(rows, sim_q, gram, lams[i], keep, empty)
    return [base if lam == 1.0 else Candidates(r, s) for lam, (r, s) in zip(lams, outs, strict=True)]


class _LazyGram:
    """The candidates' similarities sim(d, s) of a chunk of queries, computed a block of rows at a time.

    A selection step needs the similarities of every candidate to the one just picked: a row of the query's Gram
    matrix V·Vᵀ. Rows are computed in order of relevance, `_BLOCK` at a time for every query of the chunk (one
    batched float32 product, compute-bound), and only as far as the picks reach: MMR's picks are mostly among the
    more relevant candidates, so the top 100 of 500 need about half of the matrix (benchmarks/mmr.py)."""

    def __init__(self, vecs: np.ndarray, sim_q: np.ndarray) -> None:
        import torch  # the batched product: torch.bmm runs these shapes several times faster than numpy's matmul

        b, c, _ = vecs.shape
        self.vecs = torch.from_numpy(vecs)  # (b, C, d), shares memory
        self.rows = np.empty((b, c, c), dtype=np.float32)  # rows[q, j] = sim(candidate j, every candidate) once done
        self.by_relevance = np.argsort(-sim_q, axis=1, kind="stable")  # (b, C) candidate columns, most relevant first
        self.rank = np.empty((b, c), dtype=np.int64)
        np.put_along_axis(self.rank, self.by_relevance, np.arange(c)[None, :], axis=1)
        self.done = 0  # rows of the first `done` candidates in relevance order are computed, for every query

    def _extend(self, upto: int) -> None:
        import torch

        b, c = self.rank.shape
        while self.done <= upto:
            cols = self.by_relevance[:, self.done : self.done + _BLOCK]  # (b, B)
            picked = torch.from_numpy(self.vecs.numpy()[np.arange(b)[:, None], cols])  # (b, B, d)
            self.rows[np.arange(b)[:, None], cols] = torch.bmm(picked, self.vecs.transpose(1, 2)).numpy()
            self.done = min(c, self.done + _BLOCK)

    def row(self, pick: np.ndarray, live: np.ndarray) -> np.ndarray:
        """sim(d, pick[q]) for every candidate d of every query q: (b, C); computed first where missing."""
        ar = np.arange(len(pick))
        reach = int(np.max(self.rank[ar, pick], where=live, initial=-1))
        if reach >= self.done:
            self._extend(reach)
        return self.rows[ar, pick]


def _select(rows: np.ndarray, sim_q: np.ndarray, gram: _LazyGram, lam: float, keep: int,
            empty: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """The greedy selection for one chunk of queries, all at once: rows and MMR values (b, keep) of the picks.
    `empty` is the redundancy of an empty selection (0: the clamp; −1: none, see `relevance`)."""
    b, c = rows.shape
    out_rows = np.full((b, keep), -1, dtype=np.int64)
    out_scores = np.full((b, keep), -np.inf, dtype=np.float32)
    lam32, div32 = np.float32(lam), np.float32(1.0 - lam)
    rel = lam32 * sim_q  # (b, C) float32
    value = np.where(rows >= 0, rel - div32 * np.float32(empty), -np.inf).astype(np.float32)  # redundancy of S = ∅
    ar = np.arange(b)
    term = np.empty((b, c), dtype=np.float32)
    for step in range(keep):
        pick = value.argmax(axis=1)
        best = value[ar, pick]
        live = np.isfinite(best)
        if not live.any():
            break
        out_rows[live, step] = rows[ar[live], pick[live]]
        out_scores[live, step] = best[live]
        value[ar, pick] = -np.inf  # taken
        # value = λ·rel − (1 − λ)·max(redundancy, sim(d, picked)) = min(value, λ·rel − (1 − λ)·sim(d, picked))
        np.multiply(gram.row(pick, live), div32, out=term)
        np.subtract(rel, term, out=term)
        np.minimum(value, term, out=value)
    return out_rows, out_scores


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
        grid = tuple(float(lam) for lam in self.params.grid)
        ranked = mmr_many(data.candidates, data.queries, docs, grid, keep, self.params.variant)
        scores = {lam: data.evaluate(out) for lam, out in zip(grid, ranked, strict=True)}
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
