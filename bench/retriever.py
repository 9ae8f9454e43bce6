"""What a retriever is to the pipeline: query vectors in the corpus embedding space, one or several per query.

The harness owns search, merging and scoring, so every retriever is measured the same way.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from rich.console import Console

from bench.index import FlatIndex
from bench.task import Corpus, Split, TaskData


class DocumentEncoder(Protocol):
    """Embeds a text corpus. `cache_key` names the embedding space: model id + revision/weights hash + prompt.

    An encoder may also offer `encode_corpus_shards(corpus) -> Iterator[np.ndarray]` (row blocks in corpus order):
    the pipeline then builds the index block by block (bench.encode.CorpusEncoder: sharded, cached, resumable)."""

    cache_key: str

    def encode_corpus(self, corpus: Corpus) -> np.ndarray: ...


@dataclass
class RunContext:
    """What a retriever may use while it prepares and encodes: the task, the shared corpus index, run settings."""

    task: TaskData
    corpus_embeddings: np.ndarray
    index: FlatIndex
    seed: int = 0
    device: str = "auto"
    retrain: bool = False
    console: Console = field(default_factory=lambda: Console(stderr=True))
    extra: dict[str, Any] = field(default_factory=dict)  # recorded under `extra` in the result


class Retriever(abc.ABC):
    """Base class of registered retrievers. Subclasses set their params dataclass at registration."""

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
    def encode_queries(self, split: Split, ctx: RunContext) -> np.ndarray:
        """Query vectors of shape (n_queries, m, d), in the corpus embedding space; m = 1 for one vector."""

    def info(self) -> dict[str, Any]:
        """What identifies the model behind the vectors (model id, revision, checkpoint): stored in results."""
        return {}
