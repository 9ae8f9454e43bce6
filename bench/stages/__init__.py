"""Pipeline stages (bench/stages/base.py defines the seam): expanders, fusers, re-rankers, and system names.

Fusers live in bench/fusion/, re-rankers in bench/rerank/, expanders in bench/stages/expand_*.py; each registers
itself with a decorator from bench.registry and is discovered through entry points."""

from bench.stages.base import (
    PAD_ROW,
    PAD_SCORE,
    ArrayDocuments,
    Candidates,
    DocumentVectors,
    Expander,
    Fuser,
    PerVectorLists,
    QueryVectors,
    Reranker,
    Stage,
    TuningData,
    documents_of,
)

__all__ = [
    "PAD_ROW", "PAD_SCORE", "ArrayDocuments", "Candidates", "DocumentVectors", "Expander", "Fuser", "PerVectorLists",
    "QueryVectors", "Reranker", "Stage", "TuningData", "documents_of",
]
