"""Re-rankers applied after fusion (one file per method; each registers with `@register_reranker`, and this package
is the `multitarget_bench.rerankers` entry point)."""

from bench.rerank.mmr import MMRParams, MMRReranker, mmr

__all__ = ["MMRParams", "MMRReranker", "mmr"]
