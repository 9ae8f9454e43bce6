"""Reciprocal rank fusion.

    RRF(d) = Σ_j 1 / (k + rank_j(d))        over the lists j of the query that contain d; rank 1-based; k = 60

Source: Cormack, Clarke & Büttcher, "Reciprocal rank fusion outperforms Condorcet and individual rank learning
methods", SIGIR 2009 (k = 60 from that paper). Ties on the fused score are broken by the lower corpus row.
"""

from __future__ import annotations

from dataclasses import dataclass

from bench.registry import register_fuser
from bench.systems.fusion._aggregate import ranks, reduce_by_document
from bench.systems.records import Candidates, PerVectorLists
from bench.systems.stages import Fuser


@dataclass(frozen=True)
class RRFParams:
    k: int = 60

    def __post_init__(self) -> None:
        if self.k < 0:
            raise ValueError(f"k must be ≥ 0, got {self.k}")


def rrf(lists: PerVectorLists, depth: int, k: int = 60) -> Candidates:
    """The RRF-fused list of every query (vectorised over queries and lists)."""
    return reduce_by_document(lists, 1.0 / (k + ranks(lists)), "sum", depth)


@register_fuser("rrf", description="reciprocal rank fusion: Σ 1/(k + rank) over the lists (Cormack et al. 2009)",
                params=RRFParams)
class RRFFuser(Fuser):
    def fuse(self, lists: PerVectorLists, depth: int) -> Candidates:
        return rrf(lists, depth, self.params.k)
