"""Records a task hands to the pipeline: a corpus, splits of queries, and each query's answer clusters."""

from __future__ import annotations

import abc
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bench.errors import BenchError
from bench.params import Pairs, parse_params
from bench.registry import TASKS
from bench.storage.cache import array_hash


@dataclass
class Targets:
    """The answer clusters of n queries, as flat arrays (vectorised metrics need no Python loop over queries).

    Row i says: corpus row `doc[i]` is a gold document of cluster `cluster[i]` (0-based within its query) of query
    `query[i]`. A query is solved for an answer when any document of that answer's cluster is retrieved.
    `n_clusters[q]` is m, the number of answers of query q (every query has at least one).
    """

    query: np.ndarray
    cluster: np.ndarray
    doc: np.ndarray
    n_clusters: np.ndarray

    @classmethod
    def from_nested(cls, nested: Sequence[Sequence[Sequence[int]]], n_docs: int | None = None) -> Targets:
        """Build from `nested[q][c]` = the corpus rows of cluster c of query q. A negative row, or a row ≥ `n_docs`
        when the corpus size is given, is an error (the metrics would count it as a hit on another query)."""
        q_idx: list[int] = []
        c_idx: list[int] = []
        d_idx: list[int] = []
        counts = np.zeros(len(nested), dtype=np.int64)
        for q, clusters in enumerate(nested):
            if not clusters:
                raise BenchError(f"query {q} has no answer cluster")
            counts[q] = len(clusters)
            for c, docs in enumerate(clusters):
                if len(docs) == 0:
                    raise BenchError(f"query {q}, cluster {c} has no gold document")
                for d in docs:
                    d = int(d)
                    if d < 0 or (n_docs is not None and d >= n_docs):
                        size = f" (the corpus has rows 0..{n_docs - 1})" if n_docs is not None else ""
                        raise BenchError(f"query {q}, cluster {c}: gold document row {d} is out of range{size}")
                    q_idx.append(q)
                    c_idx.append(c)
                    d_idx.append(d)
        return cls(
            np.asarray(q_idx, dtype=np.int64),
            np.asarray(c_idx, dtype=np.int64),
            np.asarray(d_idx, dtype=np.int64),
            counts,
        )

    @property
    def n_queries(self) -> int:
        return len(self.n_clusters)

    def nested(self) -> list[list[list[int]]]:
        out: list[list[list[int]]] = [[[] for _ in range(int(m))] for m in self.n_clusters]
        for q, c, d in zip(self.query.tolist(), self.cluster.tolist(), self.doc.tolist(), strict=True):
            out[q][c].append(d)
        return out

    def representatives(self) -> list[np.ndarray]:
        """One representative doc per cluster (its first gold doc), per query."""
        reps = [np.full(int(m), -1, dtype=np.int64) for m in self.n_clusters]
        rev = zip(self.query[::-1].tolist(), self.cluster[::-1].tolist(), self.doc[::-1].tolist(), strict=True)
        for q, c, d in rev:
            reps[q][c] = d  # iterating backwards leaves the first listed doc
        return reps

    def subset(self, queries: np.ndarray) -> Targets:
        """The targets of the given query indices, renumbered 0..len(queries)-1 in that order."""
        queries = np.asarray(queries, dtype=np.int64)
        new_index = np.full(self.n_queries, -1, dtype=np.int64)
        new_index[queries] = np.arange(len(queries))
        keep = new_index[self.query] >= 0
        order = np.argsort(new_index[self.query[keep]], kind="stable")
        return Targets(
            new_index[self.query[keep]][order],
            self.cluster[keep][order],
            self.doc[keep][order],
            self.n_clusters[queries].copy(),
        )

    def fingerprint(self) -> str:
        return array_hash(self.query, self.cluster, self.doc, self.n_clusters)

    def check_rows(self, n_docs: int, where: str = "targets") -> None:
        """Raise a BenchError when a gold row is negative or not a row of an n_docs corpus."""
        if len(self.doc) and (int(self.doc.min()) < 0 or int(self.doc.max()) >= n_docs):
            bad = int(self.doc[(self.doc < 0) | (self.doc >= n_docs)][0])
            raise BenchError(f"{where}: gold document row {bad} is out of range (the corpus has rows 0..{n_docs - 1})")


@dataclass
class Split:
    """Queries of one split (train / test): ids, their inputs (vectors or texts) and their targets."""

    name: str
    query_ids: list[str]
    targets: Targets
    vectors: np.ndarray | None = None
    texts: list[str] | None = None

    def __len__(self) -> int:
        return len(self.query_ids)

    def subset(self, idx: np.ndarray, name: str | None = None) -> Split:
        idx = np.asarray(idx, dtype=np.int64)
        return Split(
            name or self.name,
            [self.query_ids[i] for i in idx],
            self.targets.subset(idx),
            None if self.vectors is None else self.vectors[idx],
            None if self.texts is None else [self.texts[i] for i in idx],
        )

    def fingerprint(self) -> str:
        parts = [array_hash(np.asarray(self.query_ids, dtype=object).astype(str)), self.targets.fingerprint()]
        if self.vectors is not None:
            parts.append(array_hash(self.vectors))
        if self.texts is not None:
            parts.append(array_hash(np.asarray(self.texts, dtype=str)))
        return array_hash(np.asarray(parts))


@dataclass
class Corpus:
    """The documents searched. Vector corpora carry their embeddings; text corpora stream (id, title, text)."""

    ids: Sequence[str]  # a list, or bench.data.corpus.CorpusIds (no Python object per id) for large text corpora
    fingerprint: str
    vectors: np.ndarray | None = None
    source: Any = None  # a text reader with iter_documents() for text corpora (bench/data/corpus.py)

    def __len__(self) -> int:
        return len(self.ids)

    def iter_texts(self) -> Iterator[tuple[str, str, str]]:
        if self.source is None:
            raise BenchError("this corpus has no texts (it is a vector corpus)")
        yield from self.source.iter_documents()


@dataclass
class TaskData:
    """Everything a run needs from a task. `info` holds what a result should record (variant, source, hashes)."""

    name: str
    corpus: Corpus
    splits: dict[str, Split]
    modality: str  # "vector" or "text"
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.corpus)
        for split_name, split in self.splits.items():
            split.targets.check_rows(n, f"task {self.name}, split {split_name}")

    def split(self, name: str) -> Split:
        if name not in self.splits:
            raise BenchError(f"task {self.name} has no {name!r} split; it has {', '.join(self.splits)}")
        return self.splits[name]

    def data_hash(self) -> dict[str, str]:
        return {"corpus": self.corpus.fingerprint, **{n: s.fingerprint() for n, s in self.splits.items()}}


class Task(abc.ABC):
    """A registered task: built from its params, it loads (and caches) its data."""

    default_ks: tuple[int, ...] = (10, 100)

    def __init__(self, params: Any, name: str) -> None:
        self.params = params
        self.name = name

    @abc.abstractmethod
    def load(self) -> TaskData:
        """Load or generate the data; deterministic for the same params."""


def build_task(name: str, params: Pairs = ()) -> Task:
    """The registered task `name` built with `params` (`key=value` strings, pairs or a mapping)."""
    meta, _ = TASKS.get(name)
    task = meta.factory(parse_params(meta.params, f"task {name}", params), name)
    if not isinstance(task, Task):
        raise BenchError(f"task {name!r} does not build a bench.data.task.Task")
    return task
