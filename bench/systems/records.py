"""What flows between the stages of a system: candidate lists with scores, per-vector lists before fusion, query
vectors with a mask, and read access to the document vectors.

Conventions every stage keeps (and `Candidates.check()` verifies):
- rows are corpus row numbers (int64), best first; -1 pads a list that has fewer than k documents;
- scores are float32, -inf on padding; a higher score is better, and the order is (score desc, row asc), so two
  documents with the same score are ordered by the lower corpus row;
- a query may have a different number of lists (vectors, sub-queries): `mask[q, j]` says list j of query q exists.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from bench.errors import BenchError

PAD_ROW = -1
PAD_SCORE = -np.inf


# ----------------------------------------------------------------------------------------------------------- records
@dataclass
class Candidates:
    """One ranked list per query: rows int64 (n, k) (-1 padding) and scores float32 (n, k) (-inf padding)."""

    rows: np.ndarray
    scores: np.ndarray

    def __post_init__(self) -> None:
        self.rows = np.asarray(self.rows, dtype=np.int64)
        self.scores = np.asarray(self.scores, dtype=np.float32)
        if self.rows.ndim != 2 or self.rows.shape != self.scores.shape:
            raise BenchError(f"candidates need rows and scores of one shape (n, k); got {self.rows.shape} and "
                             f"{self.scores.shape}")

    @property
    def n(self) -> int:
        return int(self.rows.shape[0])

    @property
    def k(self) -> int:
        return int(self.rows.shape[1])

    @classmethod
    def empty(cls, n: int, k: int) -> Candidates:
        return cls(np.full((n, k), PAD_ROW, dtype=np.int64), np.full((n, k), PAD_SCORE, dtype=np.float32))

    @classmethod
    def from_unsorted(cls, rows: np.ndarray, scores: np.ndarray, k: int) -> Candidates:
        """Sort each query's (row, score) pairs by score desc then row asc, keep the top k, pad to k.

        Entries with row < 0 or score -inf / NaN are dropped. Rows must be unique within a query."""
        rows = np.asarray(rows, dtype=np.int64)
        scores = np.asarray(scores, dtype=np.float32)
        valid = (rows >= 0) & np.isfinite(scores)
        key_score = np.where(valid, -scores, np.inf)
        key_row = np.where(valid, rows, np.iinfo(np.int64).max)
        order = np.lexsort((key_row, key_score), axis=-1)[:, :k]
        out_rows = np.take_along_axis(np.where(valid, rows, PAD_ROW), order, axis=1)
        out_scores = np.take_along_axis(np.where(valid, scores, PAD_SCORE), order, axis=1)
        if out_rows.shape[1] < k:
            pad = k - out_rows.shape[1]
            out_rows = np.pad(out_rows, ((0, 0), (0, pad)), constant_values=PAD_ROW)
            out_scores = np.pad(out_scores, ((0, 0), (0, pad)), constant_values=PAD_SCORE)
        return cls(out_rows, out_scores.astype(np.float32))

    def truncate(self, k: int) -> Candidates:
        if k >= self.k:
            return self
        return Candidates(self.rows[:, :k].copy(), self.scores[:, :k].copy())

    def check(self, owner: str = "candidates") -> Candidates:
        """Raise a BenchError if the conventions above do not hold (used by the pipeline after every stage)."""
        pad = self.rows < 0
        if np.any(np.isfinite(self.scores[pad])):
            raise BenchError(f"{owner}: a padded slot (row -1) has a finite score")
        if np.any(pad[:, :-1] & ~pad[:, 1:]):
            raise BenchError(f"{owner}: padding (-1) must come after every real row")
        s = np.where(pad, -np.inf, self.scores)
        if np.any(s[:, 1:] > s[:, :-1]):
            raise BenchError(f"{owner}: scores must not increase along a list")
        tie = (s[:, 1:] == s[:, :-1]) & ~pad[:, 1:]
        if np.any(tie & (self.rows[:, 1:] < self.rows[:, :-1])):
            raise BenchError(f"{owner}: equal scores must be ordered by the lower corpus row")
        srt = np.sort(np.where(pad, -1 - np.arange(self.k)[None, :], self.rows), axis=1)
        if np.any(srt[:, 1:] == srt[:, :-1]):
            raise BenchError(f"{owner}: a document appears twice in one list")
        return self


@dataclass
class PerVectorLists:
    """The m ranked lists of each query before fusion: rows int64 (n, m, k), scores float32 (n, m, k), mask (n, m).

    List j of query q exists when mask[q, j]; a missing list is all padding. m may differ per query (AMER's m_pred,
    an LLM's sub-queries): the array is as wide as the longest, the mask says how many each query has."""

    rows: np.ndarray
    scores: np.ndarray
    mask: np.ndarray

    def __post_init__(self) -> None:
        self.rows = np.asarray(self.rows, dtype=np.int64)
        self.scores = np.asarray(self.scores, dtype=np.float32)
        self.mask = np.asarray(self.mask, dtype=bool)
        if self.rows.ndim != 3 or self.rows.shape != self.scores.shape or self.mask.shape != self.rows.shape[:2]:
            raise BenchError(f"per-vector lists need rows/scores (n, m, k) and mask (n, m); got {self.rows.shape}, "
                             f"{self.scores.shape}, {self.mask.shape}")
        # a masked-out list is padding, whatever the producer left there
        self.rows[~self.mask] = PAD_ROW
        self.scores[~self.mask] = PAD_SCORE

    @property
    def shape(self) -> tuple[int, int, int]:
        n, m, k = self.rows.shape
        return int(n), int(m), int(k)

    @classmethod
    def single(cls, cands: Candidates) -> PerVectorLists:
        """One list per query (m = 1)."""
        return cls(cands.rows[:, None, :], cands.scores[:, None, :], np.ones((cands.n, 1), dtype=bool))

    @classmethod
    def from_flat(cls, flat: Candidates, owner: np.ndarray, n: int) -> PerVectorLists:
        """Group the lists of a flat batch (one per text / vector) by query: `owner[i]` is the query of list i,
        lists of a query keep their order. Used for expanded queries, which have a varying number of texts."""
        owner = np.asarray(owner, dtype=np.int64)
        order, slot, m = group_slots(owner, n)
        rows = np.full((n, m, flat.k), PAD_ROW, dtype=np.int64)
        scores = np.full((n, m, flat.k), PAD_SCORE, dtype=np.float32)
        mask = np.zeros((n, m), dtype=bool)
        rows[owner[order], slot] = flat.rows[order]
        scores[owner[order], slot] = flat.scores[order]
        mask[owner[order], slot] = True
        return cls(rows, scores, mask)


@dataclass
class QueryVectors:
    """Query vectors float32 (n, m, d) with mask (n, m): vector j of query q exists when mask[q, j]."""

    vectors: np.ndarray
    mask: np.ndarray

    @classmethod
    def dense(cls, vectors: np.ndarray) -> QueryVectors:
        """Every query has all m vectors (today's retrievers return a plain (n, m, d) array)."""
        v = np.asarray(vectors, dtype=np.float32)
        if v.ndim != 3:
            raise BenchError(f"query vectors must be (n_queries, m, d), got shape {v.shape}")
        return cls(v, np.ones(v.shape[:2], dtype=bool))

    @classmethod
    def from_flat(cls, flat: np.ndarray, owner: np.ndarray, n: int) -> QueryVectors:
        """Group (N, d) vectors by query (`owner[i]` = the query of vector i), keeping their order within a query."""
        flat = np.asarray(flat, dtype=np.float32)
        owner = np.asarray(owner, dtype=np.int64)
        order, slot, m = group_slots(owner, n)
        vecs = np.zeros((n, m, flat.shape[1]), dtype=np.float32)
        mask = np.zeros((n, m), dtype=bool)
        vecs[owner[order], slot] = flat[order]
        mask[owner[order], slot] = True
        return cls(vecs, mask)

    @property
    def shape(self) -> tuple[int, int, int]:
        n, m, d = self.vectors.shape
        return int(n), int(m), int(d)


class DocumentVectors(Protocol):
    """Access to the L2-normalised document vectors of the run's index: `gather(rows)` returns float32 vectors of
    shape rows.shape + (dim,), zero vectors where rows < 0. bench.index provides it for every index type."""

    @property
    def dim(self) -> int: ...

    def gather(self, rows: np.ndarray) -> np.ndarray: ...


class ArrayDocuments:
    """DocumentVectors over an in-memory (N, d) matrix of normalised vectors."""

    def __init__(self, matrix: np.ndarray) -> None:
        self.matrix = matrix

    @property
    def dim(self) -> int:
        return int(self.matrix.shape[1])

    def gather(self, rows: np.ndarray) -> np.ndarray:
        rows = np.asarray(rows, dtype=np.int64)
        out = np.asarray(self.matrix[np.maximum(rows, 0).ravel()], dtype=np.float32).reshape(*rows.shape, self.dim)
        out[rows < 0] = 0.0
        return out


def documents_of(source: Any) -> DocumentVectors:
    """A DocumentVectors for an index / store / matrix: anything with `gather`, else a (N, d) array."""
    if hasattr(source, "gather"):
        return source  # type: ignore[no-any-return]
    if hasattr(source, "vectors") and callable(source.vectors):
        return ArrayDocuments(source.vectors())
    return ArrayDocuments(np.asarray(source))


def group_slots(owner: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Where each of N flat items goes when grouped by query (`owner[i]` = the query of item i), keeping their
    order within a query: the stable order by query, each ordered item's slot within its query, and m, the most
    items of a query (at least 1)."""
    counts = np.bincount(owner, minlength=n)
    order = np.argsort(owner, kind="stable")
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    slot = np.arange(len(owner)) - starts[owner[order]]
    return order, slot, max(int(counts.max(initial=0)), 1)
