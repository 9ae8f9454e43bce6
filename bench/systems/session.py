"""A session: what the runs of one command share — loaded task data, one corpus index per corpus × document encoder,
and the query vectors of stateless encoders (so `--retriever minilm,minilm+mmr` encodes the queries once)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rich.console import Console

from bench.data.task import Task, TaskData
from bench.device import resolve as resolve_placement
from bench.distributed import World
from bench.errors import BenchError
from bench.index import Index, IndexSpec, VectorStore, corpus_store, open_index
from bench.params import params_dict
from bench.progress import STDERR
from bench.storage.cache import Recipe, stable_hash
from bench.systems.records import QueryVectors
from bench.systems.retriever import VectorRetriever


@dataclass
class Session:
    """Shares loaded tasks and corpus indexes between the runs of one command (one index per corpus × encoder)."""

    device: str = "auto"
    console: Console = field(default_factory=lambda: STDERR)
    world: World | None = None  # under torchrun (bench/distributed.py): the ranks share the corpus encoding out
    index: IndexSpec = field(default_factory=IndexSpec)  # --index, --nprobe, --ef-search, --rescore, --fp16-index
    _tasks: dict[str, TaskData] = field(default_factory=dict)
    _stores: dict[str, VectorStore] = field(default_factory=dict)
    _indexes: dict[str, tuple[VectorStore, Index]] = field(default_factory=dict)
    queries: dict[str, QueryVectors] = field(default_factory=dict)  # query vectors of stateless (dense) encoders

    def task_data(self, task: Task) -> TaskData:
        key = stable_hash([task.name, params_dict(task.params)])
        if key not in self._tasks:
            self._tasks[key] = task.load()
        return self._tasks[key]

    def corpus_vectors(self, data: TaskData, retriever: VectorRetriever, recipe: Recipe | None = None,
                       shared: bool = True) -> tuple[VectorStore, str]:
        """The corpus's vector store (normalised embeddings, encoded into cached shards when missing, shared out over
        the ranks under torchrun unless `shared` is False: a call one rank makes alone) for this retriever's document
        encoder, and the name of that embedding space. `--device` is resolved once (bench/device.py) and handed to the
        retriever; `recipe` goes into the manifests of the entries it writes."""
        retriever.place(resolve_placement(self.device, source="cli"))  # dense / mteb encoders run where --device says
        encoder = retriever.document_encoder(data)
        if encoder is None:
            if data.corpus.vectors is None:
                raise BenchError(
                    f"retriever {retriever.name!r} has no document encoder, and task {data.name!r} is a text task"
                )
            space = "vectors"
        else:
            space = encoder.cache_key
        key = stable_hash([data.corpus.fingerprint, space, self.index.session_key()])
        if key not in self._stores:  # the shards (or the task's vectors) are the one copy of the embeddings
            world = self.world if shared else None
            self._stores[key] = corpus_store(data.corpus, encoder, self.index, recipe=recipe, world=world)
        return self._stores[key], space

    def corpus_index(self, data: TaskData, retriever: VectorRetriever, recipe: Recipe | None = None,
                     shared: bool = True) -> tuple[VectorStore, Index, str]:
        """The corpus's vector store (`corpus_vectors`), its index (bench/index) for this retriever's document
        encoder, and the name of that embedding space. `shared=False`: called by one rank alone (a stage's own
        retrieval on rank 0), so nothing waits for the other ranks."""
        store, space = self.corpus_vectors(data, retriever, recipe, shared)
        placement = resolve_placement(self.device, source="cli")
        key = stable_hash([data.corpus.fingerprint, space, self.index.session_key()])
        if key not in self._indexes:
            index: Index
            if self.world is None or not shared or self.index.exact:
                index = open_index(self.index, store, placement, self.console, recipe=recipe)
            else:  # an approximate index is trained and cached once, by rank 0; the others load it
                with self.world.rank_zero_first(f"index/{key}", "building the approximate index"):
                    index = open_index(self.index, store, placement, self.console, recipe=recipe)
            self._indexes[key] = (store, index)
        emb, index = self._indexes[key]
        return emb, index, space

    def memo_key(self, retriever: Any, split_fingerprint: str) -> str:
        return stable_hash([retriever.name, retriever.spec, params_dict(retriever.params), split_fingerprint])
