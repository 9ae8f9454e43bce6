"""`bm25`: lexical retrieval with BM25 on bm25s (bench/index/bm25.py), a retriever that returns its own scored ranking.

No query vectors and no corpus embeddings: the pipeline builds no FAISS index for it, fuses its lists as it would
any (sub-queries of `--expand subqueries` are each searched and fused), and refuses stages that need document
vectors (MMR). The index is cached by corpus fingerprint + parameters (bench/index/bm25.py), so a rerun tokenises
nothing.

Parameters (`-r key=value`, or `-r bm25.key=value`): k1 (0.9), b (0.4), method (lucene), stopwords (en | none),
stemmer (english | none), lower, splitter — Pyserini's BM25 defaults; every value is recorded in the result.
"""

from __future__ import annotations

from typing import Any

from bench.errors import BenchError
from bench.index.bm25 import BM25Index, BM25Params, load_or_build_bm25
from bench.progress import STDERR, make_progress
from bench.registry import register_retriever
from bench.systems.context import RunContext
from bench.systems.records import Candidates
from bench.systems.retriever import RankingRetriever


@register_retriever(
    "bm25",
    description="BM25 (bm25s, Lucene scoring, k1=0.9 b=0.4, English stopwords + Snowball stemming): lexical, "
                "returns its own scored ranking; index cached",
    kind="lexical",
    params=BM25Params,
)
class BM25Retriever(RankingRetriever):
    def __init__(self, params: BM25Params | None, name: str, spec: str | None = None) -> None:
        params = params or BM25Params()
        params.validate()
        super().__init__(params, name, spec)
        self.index: BM25Index | None = None

    def prepare(self, ctx: RunContext) -> None:
        """Load the cached index of the task's corpus, or tokenise the corpus and cache it."""
        if ctx.task.modality != "text":
            raise BenchError(f"retriever {self.name!r} ranks texts; task {ctx.task.name!r} is a {ctx.task.modality} "
                             "task")
        corpus = ctx.task.corpus
        with make_progress(ctx.console or STDERR) as progress:
            bar = progress.add_task("bm25 index", total=len(corpus), status=corpus.fingerprint[:12])
            self.index = load_or_build_bm25(corpus, self.params, progress=lambda n: progress.advance(bar, n),
                                            recipe=ctx.recipe)

    def rank_texts(self, texts: list[str], depth: int, ctx: RunContext) -> Candidates:
        if self.index is None:
            self.prepare(ctx)
        assert self.index is not None
        scores, rows = self.index.search(texts, depth)
        return Candidates(rows, scores)

    def info(self) -> dict[str, Any]:
        return {"index": self.index.describe() if self.index is not None else None,
                "index_path": str(self.index.path) if self.index is not None and self.index.path else None}
