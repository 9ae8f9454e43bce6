"""The stage seam: the three kinds of pluggable stage between a retriever and the metrics.

A system is a pipeline (bench/systems/pipeline.py):

    query texts ──[Expander]──▶ one or more texts per query
                └─▶ retriever: query vectors (n, m, d)  ── search each vector ──▶ PerVectorLists (n, m, k)
                    or its own scored lists (bm25)      ─────────────────────▶ PerVectorLists (n, m, k)
    PerVectorLists ──[Fuser]──▶ Candidates (n, k) ──[Reranker]*──▶ Candidates (n, k) ──▶ metrics, TREC file

The records that flow between stages, and their conventions, are in bench/systems/records.py. Stages are plugins: a
class registered with `register_fuser` / `register_reranker` / `register_expander` (bench/registry.py) and a frozen
params dataclass; it is built as `factory(params, name)`. Stages are stateless between runs, except that a re-ranker
may `tune` itself on the validation split before it is applied.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bench.systems.records import Candidates, DocumentVectors, PerVectorLists, QueryVectors

if TYPE_CHECKING:
    from bench.data.task import Split, Targets
    from bench.systems.context import RunContext


# ------------------------------------------------------------------------------------------------------------ stages
class Stage:
    """A registered stage: built as `factory(params, name)`; `params` is its frozen params dataclass (or None)."""

    kind = "stage"

    def __init__(self, params: Any, name: str) -> None:
        self.params = params
        self.name = name

    def info(self) -> dict[str, Any]:
        """What a result should record about this stage beyond its params (a tuned value, a model id, a hash)."""
        return {}


class Expander(Stage, abc.ABC):
    """Rewrites each query text before the retriever sees it: per query one or more texts.

    One text (LLM keywords: question + keywords; PRF: the expanded query) replaces the query; m texts (LLM
    sub-queries) are each encoded / searched on their own and fused like AMER's m vectors. Works for dense retrievers
    (texts → vectors → search) and for lexical ones (bm25 searches the texts itself). Every query must get ≥ 1 text.
    """

    kind = "expander"

    @abc.abstractmethod
    def expand(self, texts: list[str], split: Split, ctx: RunContext) -> list[list[str]]:
        """`texts[i]` is the text of query i of `split`; return one non-empty list of texts per query."""

    def llm_calls(self, split: Split) -> int:
        """LLM calls that expanding `split` took, sent or answered from the reply cache (what a query costs on a
        cold cache): `by_split[split].llm_calls` of the stage's record, 0 for an expander that calls no LLM."""
        return int(self.info().get("by_split", {}).get(split.name, {}).get("llm_calls", 0))


class Fuser(Stage, abc.ABC):
    """Fuses the m ranked lists of every query into one list of `depth` candidates, with fused scores."""

    kind = "fuser"

    @abc.abstractmethod
    def fuse(self, lists: PerVectorLists, depth: int) -> Candidates:
        """One list per query, best first, at most `depth` long (padded to `depth`)."""


@dataclass
class TuningData:
    """What a re-ranker may tune on: the base system's output on the validation split, and how to score a ranking.

    `evaluate(candidates)` returns the mean of the tuning metric (`metric`: MRECALL at the run's smallest cutoff)
    over those queries; higher is better."""

    split: Split
    candidates: Candidates
    queries: QueryVectors | None
    targets: Targets
    evaluate: Callable[[Candidates], float]
    metric: str


class Reranker(Stage, abc.ABC):
    """Re-orders (and may re-score) the candidates of every query; it sees the query vectors and document vectors.

    `needs_vectors = True` (the default) means it needs document vectors in the retriever's embedding space: the
    pipeline refuses it, with a clear error, for a system that has none (bm25). `keep` is how many re-ranked
    documents to return (None: every candidate); the pipeline passes the run's depth to the last re-ranker."""

    kind = "reranker"
    needs_vectors = True
    depth = 500  # how many base candidates it wants to see
    wants_tuning = True  # False skips `tune` (e.g. a value fixed by the user)

    def tuning_metric(self, cutoffs: Sequence[int]) -> str:
        """The metric `tune` maximises: the `metric` parameter when the re-ranker has one set, else MRECALL at the
        run's smallest cutoff (the one most sensitive to order: at a large k, e.g. 100 on LIMIT-small's 46
        documents, every setting scores the same)."""
        return str(getattr(self.params, "metric", "") or f"MRECALL@{min(cutoffs)}")

    def tune(self, data: TuningData, docs: DocumentVectors | None, ctx: RunContext,
             keep: int | None = None) -> dict[str, Any]:
        """Choose parameters on validation data before `rerank` is applied to the test split; returns a record of
        the choice (stored in the result). Default: nothing to tune."""
        return {}

    @abc.abstractmethod
    def rerank(self, cands: Candidates, queries: QueryVectors | None, docs: DocumentVectors | None,
               ctx: RunContext, keep: int | None = None) -> Candidates:
        """The new ranking of `cands` (same n; at most `keep` long)."""
