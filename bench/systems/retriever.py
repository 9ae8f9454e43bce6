"""What a retriever is to the pipeline — two small protocols, one per way of retrieving:

- a **vector retriever** (`VectorRetriever`) turns queries into query vectors in the corpus embedding space (one or
  several per query); the harness owns search, fusion and scoring, so every retriever is measured the same way;
- a **ranking retriever** (`RankingRetriever`, e.g. bm25) searches by itself and returns scored Candidates
  (bench/systems/records.py); the pipeline builds no corpus index for it, and stages that need document vectors
  (MMR) refuse it.

`TextEncoderRetriever` is the shared base of the off-the-shelf text encoders (the dense presets, `st:`, `mteb:`): one
model embeds the documents and the queries, one vector per query. `build_retriever` makes any registered retriever
from its name and parameters.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from bench.data.task import Corpus, Split, Targets, TaskData
from bench.device import Placement
from bench.errors import BenchError
from bench.index.encode import CorpusEncoder
from bench.params import Pairs, parse_params
from bench.progress import STDERR, make_progress
from bench.registry import RETRIEVERS
from bench.systems.context import RunContext
from bench.systems.records import Candidates, QueryVectors


class DocumentEncoder(Protocol):
    """Embeds a text corpus. `cache_key` names the embedding space: model id + revision/weights hash + prompt.

    An encoder may also offer `encode_corpus_shards(corpus) -> Iterator[np.ndarray]` (row blocks in corpus order):
    the corpus store is then built block by block (bench.index.encode.CorpusEncoder: sharded, cached, resumable)."""

    cache_key: str

    def encode_corpus(self, corpus: Corpus) -> np.ndarray: ...


class Retriever:
    """What every registered retriever has: its params dataclass, its name (and a prefix's spec), a `prepare` hook
    to train or load, and `info()` for the result. Subclass VectorRetriever or RankingRetriever."""

    produces = ""  # "vectors" | "ranking": recorded with results

    def __init__(self, params: Any, name: str, spec: str | None = None) -> None:
        self.params = params
        self.name = name
        self.spec = spec

    def document_encoder(self, task: TaskData) -> DocumentEncoder | None:
        """The encoder of the corpus; None means the task's corpus vectors are the embeddings (vector tasks)."""
        return None

    def prepare(self, ctx: RunContext) -> None:
        """Train or load whatever the retriever needs (no-op for untrained retrievers)."""

    def info(self) -> dict[str, Any]:
        """What identifies the model behind the results (model id, revision, checkpoint): stored in results."""
        return {}


class VectorRetriever(Retriever):
    """Emits query vectors that the harness searches in the corpus index."""

    produces = "vectors"

    def place(self, placement: Placement | None) -> None:
        """Adopt the run's placement (`--device`) before loading a model (default: nothing to place)."""

    @abc.abstractmethod
    def encode_queries(self, split: Split, ctx: RunContext) -> np.ndarray | QueryVectors:
        """Query vectors of shape (n_queries, m, d), in the corpus embedding space; m = 1 for one vector. A
        retriever whose m varies per query returns a QueryVectors with a mask."""

    def encode_texts(self, texts: list[str], ctx: RunContext) -> np.ndarray:
        """One vector per text, (len(texts), d): how expanded queries are encoded. The default runs
        `encode_queries` on a split holding these texts and requires one vector per text."""
        split = Split("expanded", [str(i) for i in range(len(texts))],
                      Targets.from_nested([[[0]]] * len(texts)), texts=list(texts))
        out = self.encode_queries(split, ctx)
        vecs = out.vectors if isinstance(out, QueryVectors) else np.asarray(out, dtype=np.float32)
        if vecs.ndim != 3 or vecs.shape[1] != 1:
            raise BenchError(f"retriever {self.name!r} emits {vecs.shape[1] if vecs.ndim == 3 else '?'} vectors per "
                             "query; query expansion needs a retriever with one vector per text")
        return vecs[:, 0, :]


class RankingRetriever(Retriever):
    """Searches by itself: a scored top-`depth` list per query text."""

    produces = "ranking"

    @abc.abstractmethod
    def rank_texts(self, texts: list[str], depth: int, ctx: RunContext) -> Candidates:
        """The scored top-`depth` list of each text (best first, ties by lower corpus row)."""

    def rank(self, split: Split, depth: int, ctx: RunContext) -> Candidates:
        """The scored lists of a split's queries (default: `rank_texts` of the query texts)."""
        if split.texts is None:
            raise BenchError(f"retriever {self.name!r} ranks query texts; split {split.name!r} of task "
                             f"{ctx.task.name!r} has none")
        return self.rank_texts(list(split.texts), depth, ctx)


@runtime_checkable
class Trainable(Protocol):
    """A retriever trained on a task's train split (`bench train`): AMER, Single-Query."""

    def train(self, ctx: RunContext, dest: Path | None = None, strategy: Any = None) -> Path: ...


class TextEncoderRetriever(VectorRetriever):
    """One text encoder for documents and queries, one query vector per query: the dense presets, `st:` and `mteb:`.

    A subclass says how it embeds (`encode(texts, role, advance)` with role "query" or "document"), which space its
    document embeddings live in (`space()`: what must match for two runs to share them), and what to record about
    the corpus encoding (`encoder_record()`); its params have `shard_size`."""

    model_label = ""  # shown in progress bars and errors (the model id)

    @abc.abstractmethod
    def encode(self, texts: list[str], role: str, advance: Callable[[int], None] | None = None) -> np.ndarray:
        """float32 (len(texts), d) embeddings of `texts` as queries or documents."""

    @abc.abstractmethod
    def space(self) -> str:
        """The document embedding space: model, revision or weights, prompt, settings."""

    def encoder_record(self) -> dict[str, Any]:
        return {"model_id": self.model_label}

    def document_encoder(self, task: TaskData) -> CorpusEncoder:
        if task.modality != "text":
            raise BenchError(f"retriever {self.name!r} embeds text; task {task.name!r} is a {task.modality} task")
        return CorpusEncoder(self.space(), lambda texts, advance: self.encode(texts, "document", advance),
                             shard_size=self.params.shard_size, describe=self.encoder_record())

    def encode_queries(self, split: Split, ctx: RunContext) -> np.ndarray:
        if split.texts is None:
            raise BenchError(f"retriever {self.name!r} needs query texts; task {ctx.task.name!r} has none")
        with make_progress(ctx.console or STDERR) as progress:
            bar = progress.add_task("encode queries", total=len(split.texts), status=self.model_label)
            q = self.encode(list(split.texts), "query", lambda n: progress.advance(bar, n))
        if ctx.index is not None and q.shape[1] != ctx.index.dim:
            raise BenchError(
                f"{ctx.index.path or 'the corpus index'}: field 'dim': the index holds {ctx.index.dim}-dim vectors, "
                f"but {self.model_label} embeds queries in {q.shape[1]} dimensions; remove the stale entry with "
                "`bench cache clear embeddings indexes`"
            )
        return q[:, None, :]


def build_retriever(name: str, params: Pairs = ()) -> Retriever:
    """The registered retriever `name` (a prefix form such as `st:<model>` included) built with `params`."""
    meta, spec = RETRIEVERS.get(name)
    retriever = meta.factory(parse_params(meta.params, f"retriever {name}", params), name, spec)
    if not isinstance(retriever, VectorRetriever | RankingRetriever):
        raise BenchError(f"retriever {name!r} does not build a bench.systems.retriever.VectorRetriever or "
                         "RankingRetriever")
    return retriever  # type: ignore[no-any-return]
