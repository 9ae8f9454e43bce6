"""Ways to merge the ranked lists of a multi-vector query into one ranking (one file per method)."""

from bench.fusion.round_robin import round_robin_merge

__all__ = ["round_robin_merge"]
