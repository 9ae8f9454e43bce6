"""Systems: a retriever and its stages (expansion → search → fusion → re-ranking), named, built and run."""
