"""Untrained reference retrievers that validate the pipeline: `oracle` (an upper bound) and `input` (a floor)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bench.data.task import Split, TaskData
from bench.errors import BenchError
from bench.registry import register_retriever
from bench.systems.context import RunContext
from bench.systems.records import QueryVectors
from bench.systems.retriever import DocumentEncoder, Retriever, VectorRetriever, build_retriever


@dataclass(frozen=True)
class OracleParams:
    encoder: str | None = None  # text tasks: the retriever whose document encoder embeds the corpus (e.g. minilm)


@register_retriever(
    "oracle",
    description="emits one query vector per answer: the embedding of each cluster's first gold doc (upper bound); "
                "on a text task give the document space with -r encoder=minilm",
    kind="reference",
    params=OracleParams,
)
class OracleRetriever(VectorRetriever):
    """Cheats by reading the targets: every cluster's representative is retrieved at rank ≤ m, so MRECALL@k = 1
    for every k ≥ m (with round-robin fusion). A query with fewer answers than the most in the split has fewer
    vectors (QueryVectors' mask), so score-based fusion (rrf, combsum) counts each answer once.

    On a text task `encoder` names a retriever (minilm, st:…) whose document encoder embeds the corpus: the oracle's
    vectors are gold documents in that space, an AMER-style multi-vector system without training."""

    def __init__(self, params: OracleParams | None, name: str, spec: str | None = None) -> None:
        super().__init__(params or OracleParams(), name, spec)
        self._encoder: Retriever | None = None

    def document_encoder(self, task: TaskData) -> DocumentEncoder | None:
        if self.params.encoder is None:
            return None
        if self._encoder is None:
            self._encoder = build_retriever(self.params.encoder)
            if not isinstance(self._encoder, VectorRetriever):
                raise BenchError(f"oracle: encoder {self.params.encoder!r} has no document embeddings")
        return self._encoder.document_encoder(task)

    def encode_queries(self, split: Split, ctx: RunContext) -> QueryVectors:
        reps = split.targets.representatives()
        m = int(split.targets.n_clusters.max())
        rows = np.stack([np.concatenate([r, np.full(m - len(r), r[-1])]) for r in reps])
        mask = np.arange(m)[None, :] < split.targets.n_clusters[:, None]
        store = ctx.corpus_embeddings
        assert store is not None
        vecs = store.gather(rows) if hasattr(store, "gather") else np.asarray(store[rows])
        return QueryVectors(np.asarray(vecs, dtype=np.float32), mask)


@register_retriever(
    "input",
    description="the query's input vector as its single query vector (vector tasks only)",
    kind="reference",
)
class InputRetriever(VectorRetriever):
    """For synthetic tasks the input x itself: close to the identity target only, so it reaches at most one."""

    def encode_queries(self, split: Split, ctx: RunContext) -> np.ndarray:
        if split.vectors is None:
            raise BenchError(f"retriever 'input' needs a vector task; task {ctx.task.name!r} has text queries")
        dim = ctx.index.dim if ctx.index is not None else None
        if split.vectors.shape[1] != dim:
            raise BenchError(f"retriever 'input': inputs are {split.vectors.shape[1]}-dim, the corpus {dim}-dim")
        return split.vectors[:, None, :].astype(np.float32)
