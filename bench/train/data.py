"""Training data: queries (vectors or tokenised texts), their answer clusters as corpus rows, batches, negatives.

The corpus embeddings stay where they are (the index's vectors or the encoder's memory-mapped shards): a batch
gathers the rows it needs through `gather_rows`, the one place that reads the embedding store, so the trainer never
copies the corpus matrix to the device.

Everything that samples takes a numpy Generator that the trainer owns, seeds, and saves in resumable checkpoints.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch

from bench.data.task import Split
from bench.errors import BenchError


def gather_rows(store: Any, rows: np.ndarray) -> np.ndarray:
    """Float32 embeddings of corpus `rows` (any shape of ints) from the corpus embedding store: shape rows.shape + (d,).

    The store is what the run holds the corpus embeddings in: a bench.index.VectorStore (`gather(rows)`: the
    encoder's memory-mapped shards or the task's vectors) or any array-like. Only the asked rows are read.
    """
    arr = np.asarray(rows, dtype=np.int64)
    gather = getattr(store, "gather", None)
    out = gather(arr) if gather is not None else np.asarray(store[arr.reshape(-1)]).reshape(*arr.shape, -1)
    return np.ascontiguousarray(out, dtype=np.float32)


def corpus_size(store: Any) -> int:
    return int(store.shape[0]) if hasattr(store, "shape") else len(store)


class QueryInputs(Protocol):
    """The query side of training examples: vectors (synthetic tasks) or token ids (text tasks)."""

    def __len__(self) -> int: ...

    def subset(self, idx: np.ndarray) -> QueryInputs: ...

    def batch(self, idx: np.ndarray) -> dict[str, torch.Tensor]:
        """Model inputs of the queries `idx` as CPU tensors (QueryEncoder.prefix reads them)."""
        ...


@dataclass
class VectorQueries:
    vectors: np.ndarray  # (n, d_query) float32

    def __len__(self) -> int:
        return len(self.vectors)

    def subset(self, idx: np.ndarray) -> VectorQueries:
        return VectorQueries(self.vectors[idx])

    def batch(self, idx: np.ndarray) -> dict[str, torch.Tensor]:
        return {"vectors": torch.from_numpy(np.ascontiguousarray(self.vectors[idx], dtype=np.float32))}


@dataclass
class TokenQueries:
    """Token ids of each query's prompt (chat template around instruction + query); batches are left padded."""

    ids: list[np.ndarray]
    pad_id: int

    def __len__(self) -> int:
        return len(self.ids)

    def subset(self, idx: np.ndarray) -> TokenQueries:
        return TokenQueries([self.ids[i] for i in idx], self.pad_id)

    def batch(self, idx: np.ndarray) -> dict[str, torch.Tensor]:
        return left_pad([self.ids[i] for i in idx], self.pad_id)


def left_pad(seqs: Sequence[np.ndarray], pad_id: int) -> dict[str, torch.Tensor]:
    """`input_ids` and `attention_mask` (B, L): sequences right-aligned, so every query's last token is at −1."""
    length = max(len(s) for s in seqs)
    ids = np.full((len(seqs), length), pad_id, dtype=np.int64)
    mask = np.zeros((len(seqs), length), dtype=np.int64)
    for i, s in enumerate(seqs):
        if len(s):
            ids[i, length - len(s):] = s
            mask[i, length - len(s):] = 1
    return {"input_ids": torch.from_numpy(ids), "attention_mask": torch.from_numpy(mask)}


@dataclass
class TrainingExamples:
    """Queries and their answer clusters as corpus rows, laid out for vectorised sampling.

    Cluster c of query q has `counts[q, c]` gold docs, `docs[starts[q, c] : starts[q, c] + counts[q, c]]`;
    count 0 marks padding (queries with fewer clusters than the most in the split).
    """

    inputs: QueryInputs
    starts: np.ndarray
    counts: np.ndarray
    docs: np.ndarray

    @classmethod
    def from_split(cls, split: Split, tokenize: Any = None) -> TrainingExamples:
        """Vector queries as they are; text queries through `tokenize(texts) -> TokenQueries` (the model's own)."""
        if split.vectors is not None:
            inputs: QueryInputs = VectorQueries(np.asarray(split.vectors, dtype=np.float32))
        elif split.texts is not None:
            if tokenize is None:
                raise BenchError(f"split {split.name!r} has text queries: training needs a text backbone "
                                 "(-r backbone=NAME_OR_PATH) and its tokenizer")
            inputs = tokenize(list(split.texts))
        else:
            raise BenchError(f"split {split.name!r} has neither query vectors nor query texts")
        starts, counts, docs = cluster_layout(split)
        return cls(inputs, starts, counts, docs)

    def __len__(self) -> int:
        return len(self.inputs)

    @property
    def n_targets(self) -> int:
        """The most answers of one query (the width T of sampled target arrays)."""
        return int(self.starts.shape[1])

    def n_answers(self) -> np.ndarray:
        return (self.counts > 0).sum(axis=1)

    def subset(self, idx: np.ndarray) -> TrainingExamples:
        return TrainingExamples(self.inputs.subset(idx), self.starts[idx], self.counts[idx], self.docs)

    def sample(self, idx: np.ndarray, rng: np.random.Generator, first: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """One gold doc per cluster of each query in `idx`, clusters in random order, padding last.

        Returns rows (B, T) of corpus rows and mask (B, T), True for real targets (padding rows are 0, masked).
        The doc is drawn at random within its cluster, or with `first` its first gold document (as the task lists it).
        """
        rows, mask, order = self.sample_ordered(idx, rng, first)
        return np.take_along_axis(rows, order, axis=1), np.take_along_axis(mask, order, axis=1)

    def sample_ordered(self, idx: np.ndarray, rng: np.random.Generator, first: bool = False
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """`sample` before its shuffle: rows and mask in cluster order, and the (B, T) order that `sample` applies
        (so that what is paired with cluster slots, fixed negatives, can follow it)."""
        starts, counts = self.starts[idx], self.counts[idx]
        mask = counts > 0
        if first:
            pick = starts
        else:
            pick = starts + np.minimum((rng.random(starts.shape) * counts).astype(np.int64),
                                       np.maximum(counts - 1, 0))
        rows = np.where(mask, self.docs[np.where(mask, pick, 0)], 0)
        order = np.argsort(rng.random(starts.shape) + (~mask), axis=1, kind="stable")
        return rows, mask, order

    def gold_rows(self, idx: np.ndarray) -> list[np.ndarray]:
        """Every gold corpus row of each query in `idx` (all docs of all its clusters)."""
        out = []
        for s, c in zip(self.starts[idx], self.counts[idx], strict=True):
            out.append(np.concatenate([self.docs[a:a + n] for a, n in zip(s, c, strict=True) if n] or [np.empty(0,
                                                                                                           np.int64)]))
        return out

    def negatives(self, idx: np.ndarray, shape: tuple[int, int], n_corpus: int,
                  rng: np.random.Generator) -> np.ndarray:
        """Uniform random corpus rows, (B, T), none of them a gold doc of its own example (redrawn until so)."""
        counts = self.counts[idx].ravel()  # every cluster of every example, its gold docs laid out flat
        owner = np.repeat(np.repeat(np.arange(len(idx), dtype=np.int64), self.counts.shape[1]), counts)
        first = np.repeat(self.starts[idx].ravel() - (np.cumsum(counts) - counts), counts)
        key_gold = np.unique(owner * np.int64(n_corpus) + self.docs[first + np.arange(int(counts.sum()))])
        if len(idx) and np.bincount(key_gold // n_corpus, minlength=len(idx)).max() >= n_corpus:
            raise BenchError("an example's gold documents cover the whole corpus: no negative can be drawn")
        neg = rng.integers(0, n_corpus, shape)
        for _ in range(1000):
            bad = np.isin(np.arange(shape[0])[:, None] * np.int64(n_corpus) + neg, key_gold)
            if not bad.any():
                return neg
            neg[bad] = rng.integers(0, n_corpus, int(bad.sum()))
        raise BenchError("could not draw negatives outside the gold documents in 1,000 rounds")


def cluster_layout(split: Split) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(starts, counts, docs) of `TrainingExamples` for a split's targets."""
    tg = split.targets
    t_max = int(tg.n_clusters.max())
    order = np.lexsort((tg.cluster, tg.query))
    docs = tg.doc[order]
    pair = tg.query[order] * t_max + tg.cluster[order]
    uniq, first, count = np.unique(pair, return_index=True, return_counts=True)
    starts = np.zeros(len(split) * t_max, dtype=np.int64)
    counts = np.zeros(len(split) * t_max, dtype=np.int64)
    starts[uniq] = first
    counts[uniq] = count
    return starts.reshape(-1, t_max), counts.reshape(-1, t_max), docs.astype(np.int64)


class BatchSampler:
    """Endless global batches: successive slices of fresh random permutations (an epoch sees every example once).

    With `sort_key` (one value per example, e.g. its answer count) each permutation is stably sorted by it, so the
    batches of an epoch run from the smallest key to the largest, examples of one key in random order (the reference's
    loader for majority-count batching). Its state (the generator and the unused rest of the current permutation)
    goes into resumable checkpoints.
    """

    def __init__(self, n: int, size: int, rng: np.random.Generator, sort_key: np.ndarray | None = None) -> None:
        self.n, self.size, self.rng = n, size, rng
        self.sort_key = sort_key
        self.buf = np.empty(0, dtype=np.int64)

    def next(self) -> np.ndarray:
        while len(self.buf) < self.size:
            perm = self.rng.permutation(self.n)
            if self.sort_key is not None:
                perm = perm[np.argsort(self.sort_key[perm], kind="stable")]
            self.buf = np.concatenate([self.buf, perm])
        out, self.buf = self.buf[: self.size], self.buf[self.size:]
        return out

    def state_dict(self) -> dict[str, Any]:
        return {"rng": self.rng.bit_generator.state, "buf": self.buf.tolist()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]
        self.buf = np.asarray(state["buf"], dtype=np.int64)


@dataclass
class Batch:
    """One global batch drawn on every process alike: example indices, targets, negatives, feeding decisions."""

    idx: np.ndarray  # (B,) example indices
    rows: np.ndarray  # (B, T) target corpus rows
    mask: np.ndarray  # (B, T) real targets
    neg: np.ndarray  # (B, T) negative corpus rows
    use_pred: np.ndarray  # (B, max(T − 1, 0)) feed the model's own prediction at step i (else target i)

    def slice(self, part: slice | np.ndarray) -> Batch:
        """The examples `part` (a slice, or an index or boolean array) of this batch."""
        return Batch(self.idx[part], self.rows[part], self.mask[part], self.neg[part], self.use_pred[part])

    def majority(self) -> Batch:
        """Only the examples with the batch's most common number of targets (on a tie, the count met first in the
        batch), target columns cut to that count: the reference's batches, which drop the other examples."""
        counts = self.mask.sum(axis=1)
        values, first, freq = np.unique(counts, return_index=True, return_counts=True)
        modal = int(values[np.lexsort((first, -freq))[0]])
        kept = self.slice(counts == modal)
        return Batch(kept.idx, kept.rows[:, :modal], kept.mask[:, :modal], kept.neg[:, :modal],
                     kept.use_pred[:, : max(modal - 1, 0)])


def fixed_negatives(examples: TrainingExamples, n_corpus: int, rng: np.random.Generator) -> np.ndarray:
    """(N, T) negatives drawn once for every example, one per answer slot, none an own gold doc: the reference's
    negatives, stored with the data and reused every epoch (slots beyond an example's answers are never used)."""
    idx = np.arange(len(examples))
    return examples.negatives(idx, (len(idx), examples.n_targets), n_corpus, rng)


def draw_batch(examples: TrainingExamples, idx: np.ndarray, n_corpus: int, p_predicted: float,
               rng: np.random.Generator, select: Any = None, first: bool = False,
               fixed_neg: np.ndarray | None = None) -> Batch:
    """Targets (one gold doc per cluster, random order), negatives (never own gold), and which steps feed predictions.

    `select(rows, mask)` is the objective's choice of targets (Single-Query keeps the first one only). `first` takes
    each cluster's first gold document instead of a random one; `fixed_neg` ((N, T), from `fixed_negatives`) gives
    each example its stored negatives, paired with its clusters and shuffled with them, instead of fresh draws.
    """
    if fixed_neg is None:
        rows, mask = examples.sample(idx, rng, first)
        if select is not None:
            rows, mask = select(rows, mask)
        neg = examples.negatives(idx, rows.shape, n_corpus, rng)
    else:
        rows, mask, order = examples.sample_ordered(idx, rng, first)
        rows, mask = np.take_along_axis(rows, order, axis=1), np.take_along_axis(mask, order, axis=1)
        neg = np.take_along_axis(fixed_neg[idx], order, axis=1)
        if select is not None:
            rows, mask2 = select(rows, mask)
            neg, _ = select(neg, mask)
            mask = mask2
    use_pred = rng.random((len(idx), max(rows.shape[1] - 1, 0))) < p_predicted
    return Batch(idx, rows, mask, neg, use_pred)
