"""Ways to fuse the ranked lists of a multi-vector query into one ranking (one file per method; each registers
itself with `@register_fuser`, and this package is the `multitarget_bench.fusers` entry point)."""

from bench.fusion.combmax import combmax
from bench.fusion.combsum import combsum
from bench.fusion.normalise import NORMALISATIONS, normalise_scores
from bench.fusion.round_robin import round_robin, round_robin_merge
from bench.fusion.rrf import rrf

__all__ = ["NORMALISATIONS", "combmax", "combsum", "normalise_scores", "round_robin", "round_robin_merge", "rrf"]
