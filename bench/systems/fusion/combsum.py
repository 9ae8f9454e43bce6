"""CombSUM: a document's scores summed over the query's lists (a list without the document adds nothing).

    CombSUM(d) = Σ_j s_j(d)                 over the lists j that contain d; s_j optionally normalised per list

Source: Fox & Shaw, "Combination of multiple searches", TREC-2 (1994); with `norm=minmax` this is their normalised
CombSUM as used by ranx (`method="sum"`, `norm="min-max"`). Ties on the fused score are broken by the lower corpus row.
"""

from __future__ import annotations

from bench.registry import register_fuser
from bench.systems.fusion._aggregate import reduce_by_document
from bench.systems.fusion.combmax import CombParams
from bench.systems.fusion.normalise import normalise_scores
from bench.systems.records import Candidates, PerVectorLists
from bench.systems.stages import Fuser


def combsum(lists: PerVectorLists, depth: int, norm: str = "none") -> Candidates:
    """The CombSUM-fused list of every query (vectorised over queries and lists)."""
    return reduce_by_document(lists, normalise_scores(lists, norm), "sum", depth)


@register_fuser("combsum", description="CombSUM: a document's scores summed over the lists (Fox & Shaw 1994); "
                "norm=none|minmax|zscore", params=CombParams, aliases=("sum",))
class CombSumFuser(Fuser):
    def fuse(self, lists: PerVectorLists, depth: int) -> Candidates:
        return combsum(lists, depth, self.params.norm)
