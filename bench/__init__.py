"""multitarget-bench: a harness for multi-target retrieval (several right answers per query)."""

__version__ = "0.1.0"
