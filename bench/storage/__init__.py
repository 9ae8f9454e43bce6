"""What the harness keeps on disk: atomic writes, the verified cache, checks before a run, provenance."""
