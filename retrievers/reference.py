"""Untrained reference retrievers that validate the pipeline: `oracle` (an upper bound) and `input` (a floor)."""

from __future__ import annotations

import numpy as np

from bench.errors import BenchError
from bench.registry import register_retriever
from bench.retriever import Retriever, RunContext
from bench.task import Split


@register_retriever(
    "oracle",
    description="emits one query vector per answer: the embedding of each cluster's first gold doc (upper bound)",
    kind="reference",
)
class OracleRetriever(Retriever):
    """Cheats by reading the targets: every cluster's representative is retrieved at rank ≤ m, so MRECALL@k = 1
    for every k ≥ m. Queries with fewer answers than the most in the split repeat their last vector (merging
    de-duplicates)."""

    def encode_queries(self, split: Split, ctx: RunContext) -> np.ndarray:
        reps = split.targets.representatives()
        m = int(split.targets.n_clusters.max())
        rows = np.stack([np.concatenate([r, np.repeat(r[-1:], m - len(r))]) for r in reps])
        return np.asarray(ctx.corpus_embeddings[rows], dtype=np.float32)


@register_retriever(
    "input",
    description="the query's input vector as its single query vector (vector tasks only)",
    kind="reference",
)
class InputRetriever(Retriever):
    """For synthetic tasks the input x itself: close to the identity target only, so it reaches at most one."""

    def encode_queries(self, split: Split, ctx: RunContext) -> np.ndarray:
        if split.vectors is None:
            raise BenchError(f"retriever 'input' needs a vector task; task {ctx.task.name!r} has text queries")
        if split.vectors.shape[1] != ctx.index.dim:
            raise BenchError(
                f"retriever 'input': inputs are {split.vectors.shape[1]}-dim, the corpus {ctx.index.dim}-dim"
            )
        return split.vectors[:, None, :].astype(np.float32)
