"""Re-rankers applied after fusion: one file per method, each registering itself with `@register_reranker` (the
re-rankers registry finds every module of this package)."""
