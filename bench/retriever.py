"""What a retriever is to the pipeline: query vectors in the corpus embedding space (one or several per query), or
its own scored ranking (lexical retrievers such as bm25).

For vector retrievers the harness owns search, fusion and scoring, so every retriever is measured the same way. A
ranking retriever (`produces = "ranking"`) searches itself and returns scored Candidates (bench/stages/base.py);
the pipeline then builds no corpus index for it, and stages that need document vectors (MMR) refuse it.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from rich.console import Console

from bench.errors import BenchError
from bench.index import Index, VectorStore
from bench.stages.base import Candidates, QueryVectors
from bench.task import Corpus, Split, Targets, TaskData


class DocumentEncoder(Protocol):
    """Embeds a text corpus. `cache_key` names the embedding space: model id + revision/weights hash + prompt.

    An encoder may also offer `encode_corpus_shards(corpus) -> Iterator[np.ndarray]` (row blocks in corpus order):
    the pipeline then builds the index block by block (bench.encode.CorpusEncoder: sharded, cached, resumable)."""

    cache_key: str

    def encode_corpus(self, corpus: Corpus) -> np.ndarray: ...


@dataclass
class RunContext:
    """What a retriever (and every stage) may use: the task, the shared corpus index, run settings.

    `index` and `corpus_embeddings` are None for a ranking retriever (bm25), which needs no corpus index.
    `corpus_embeddings` is the index's vector store (bench/index.py): `gather(rows)` / `[rows]` read normalised
    vectors; the memory-mapped store of a large text corpus is never held whole (an ndarray is accepted too)."""

    task: TaskData
    corpus_embeddings: VectorStore | np.ndarray | None
    index: Index | None
    seed: int = 0
    device: str = "auto"
    retrain: bool = False
    console: Console = field(default_factory=lambda: Console(stderr=True))
    extra: dict[str, Any] = field(default_factory=dict)  # recorded under `extra` in the result


class Retriever(abc.ABC):
    """Base class of registered retrievers. Subclasses set their params dataclass at registration.

    A vector retriever implements `encode_queries`; a ranking retriever sets `produces = "ranking"` and implements
    `rank_texts` (and `encode_queries` is then never called)."""

    produces = "vectors"  # "vectors": query vectors searched by the harness; "ranking": its own scored lists

    def __init__(self, params: Any, name: str, spec: str | None = None) -> None:
        self.params = params
        self.name = name
        self.spec = spec

    def document_encoder(self, task: TaskData) -> DocumentEncoder | None:
        """The encoder of the corpus; None means the task's corpus vectors are the embeddings (vector tasks)."""
        return None

    def prepare(self, ctx: RunContext) -> None:
        """Train or load whatever the retriever needs (no-op for untrained retrievers)."""

    @abc.abstractmethod
    def encode_queries(self, split: Split, ctx: RunContext) -> np.ndarray | QueryVectors:
        """Query vectors of shape (n_queries, m, d), in the corpus embedding space; m = 1 for one vector. A
        retriever whose m varies per query returns a bench.stages.QueryVectors with a mask."""

    def encode_texts(self, texts: list[str], ctx: RunContext) -> np.ndarray:
        """One vector per text, (len(texts), d): how expanded queries (bench/stages) are encoded. The default runs
        `encode_queries` on a split holding these texts and requires one vector per text."""
        split = Split("expanded", [str(i) for i in range(len(texts))],
                      Targets.from_nested([[[0]]] * len(texts)), texts=list(texts))
        out = self.encode_queries(split, ctx)
        vecs = out.vectors if isinstance(out, QueryVectors) else np.asarray(out, dtype=np.float32)
        if vecs.ndim != 3 or vecs.shape[1] != 1:
            raise BenchError(f"retriever {self.name!r} emits {vecs.shape[1] if vecs.ndim == 3 else '?'} vectors per "
                             "query; query expansion needs a retriever with one vector per text")
        return vecs[:, 0, :]

    def rank_texts(self, texts: list[str], depth: int, ctx: RunContext) -> Candidates:
        """A ranking retriever's scored top-`depth` list for each text (best first, ties by lower corpus row)."""
        raise BenchError(f"retriever {self.name!r} returns query vectors, not its own ranking")

    def rank(self, split: Split, depth: int, ctx: RunContext) -> Candidates:
        """A ranking retriever's scored lists for a split's queries (default: `rank_texts` of the query texts)."""
        if split.texts is None:
            raise BenchError(f"retriever {self.name!r} ranks query texts; split {split.name!r} of task "
                             f"{ctx.task.name!r} has none")
        return self.rank_texts(list(split.texts), depth, ctx)

    def info(self) -> dict[str, Any]:
        """What identifies the model behind the vectors (model id, revision, checkpoint): stored in results."""
        return {}
