"""CombMAX: a document keeps its best score over the query's lists.

    CombMAX(d) = max_j s_j(d)               over the lists j that contain d; s_j optionally normalised per list

Source: Fox & Shaw, "Combination of multiple searches", TREC-2 (1994). For AMER's m vectors in one embedding space
(cosine scores, one scale) no normalisation is needed; `norm=minmax|zscore` (bench/systems/fusion/normalise.py) is for
lists
whose scores live on different scales. Ties on the fused score are broken by the lower corpus row.
"""

from __future__ import annotations

from dataclasses import dataclass

from bench.registry import register_fuser
from bench.systems.fusion._aggregate import reduce_by_document
from bench.systems.fusion.normalise import NORMALISATIONS, normalise_scores
from bench.systems.records import Candidates, PerVectorLists
from bench.systems.stages import Fuser


@dataclass(frozen=True)
class CombParams:
    norm: str = "none"  # none | minmax | zscore, per list, before combining

    def __post_init__(self) -> None:
        if self.norm not in NORMALISATIONS:
            raise ValueError(f"norm must be one of {', '.join(NORMALISATIONS)}, got {self.norm!r}")


def combmax(lists: PerVectorLists, depth: int, norm: str = "none") -> Candidates:
    """The CombMAX-fused list of every query (vectorised over queries and lists)."""
    return reduce_by_document(lists, normalise_scores(lists, norm), "max", depth)


@register_fuser("combmax", description="CombMAX: a document's best score over the lists (Fox & Shaw 1994); "
                "norm=none|minmax|zscore", params=CombParams, aliases=("max",))
class CombMaxFuser(Fuser):
    def fuse(self, lists: PerVectorLists, depth: int) -> Candidates:
        return combmax(lists, depth, self.params.norm)
