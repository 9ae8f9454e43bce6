"""What several tests share: the repository's paths, a scripted OpenAI-compatible server, a tiny random Llama, the
DDP worker, and the AmbigNQ fixture in the published schema."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SHARED_DATA = REPO.parent / "shared" / "data"
