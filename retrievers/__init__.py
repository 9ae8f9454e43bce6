"""Retriever plugins. Each module registers its retrievers with @register_retriever and is listed as an entry point."""
