"""On-disk cache of LLM replies, so that a rerun of an LLM-expanded system makes no request.

One JSON file per reply under `<cache>/llm/<key[:2]>/<key>.json`, a bench.storage.cache entry (atomic, with a manifest).
The key is the sha256 of (model id as the endpoint names it, prompt hash, question, generation settings). The base
URL is *not* part of the key: the same model served on another port (a local `transformers serve`) reuses the
replies. An entry holds the model, prompt hash, question, settings and reply — never the API key (the client never
hands it to the cache).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.storage.cache import Recipe, cache_root, report_and_quarantine, stable_hash, verify_entry, write_entry

FOLDER = "llm"


@dataclass(frozen=True)
class CacheKey:
    """What identifies one reply: the model, the prompt (by hash), the question and the generation settings."""

    model: str
    prompt_hash: str
    question: str
    settings: tuple[tuple[str, Any], ...] = ()

    def digest(self) -> str:
        return stable_hash(
            {"model": self.model, "prompt": self.prompt_hash, "question": self.question,
             "settings": dict(self.settings)},
            length=32,
        )


class ResponseCache:
    """Replies stored one file per key; reads tolerate a missing or unreadable file (treated as a miss)."""

    def __init__(self, root: str | Path | None = None, recipe: Recipe | None = None) -> None:
        self.root = Path(root) if root is not None else cache_root() / FOLDER
        self.recipe = recipe  # the run asking: recorded in each reply's manifest

    def path(self, key: CacheKey) -> Path:
        digest = key.digest()
        return self.root / digest[:2] / f"{digest}.json"

    def get(self, key: CacheKey) -> str | None:
        """The cached reply, or None. A damaged entry is reported in one warning line, moved aside, and missed."""
        path = self.path(key)
        if not path.exists():
            return None
        problem = verify_entry(path, require_manifest=False)
        reply = None
        if problem is None:
            try:
                entry = json.loads(path.read_text(encoding="utf-8"))
                reply = entry.get("reply") if isinstance(entry, dict) else None
            except (OSError, ValueError) as exc:
                problem = f"unreadable ({type(exc).__name__})"
            if problem is None and not isinstance(reply, str):
                problem = "no reply in the entry"
        if problem is not None:
            report_and_quarantine(path, problem, "asking the endpoint again")
            return None
        return reply

    def put(self, key: CacheKey, reply: str) -> None:
        """Store a reply as a cache entry (bench.storage.cache.write_entry: atomic, with a manifest)."""
        entry = {"model": key.model, "prompt_hash": key.prompt_hash, "question": key.question,
                 "settings": dict(key.settings), "reply": reply}
        blob = json.dumps(entry, ensure_ascii=False, indent=1)

        def write(tmp: Path) -> None:
            tmp.write_text(blob, encoding="utf-8")

        write_entry(self.path(key), write, packages=("openai",), recipe=self.recipe)
