"""LLM access for query expansion: an OpenAI-compatible chat client (client.py) and its on-disk reply cache
(cache.py)."""

from bench.llm.cache import CacheKey, ResponseCache
from bench.llm.client import ChatClient, Endpoint, Prompt, Usage

__all__ = ["CacheKey", "ChatClient", "Endpoint", "Prompt", "ResponseCache", "Usage"]
