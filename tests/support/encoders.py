"""Encoder objects as a notebook user would write them (the sentence-transformers / mteb protocol: `encode(texts)`
returns an array), for the Python API's tests. Tiny and deterministic; they test code paths, never results."""

from __future__ import annotations

import hashlib

import numpy as np


class HashingEncoder:
    """Bag of words hashed into `dim` buckets: texts sharing words get similar vectors."""

    def __init__(self, dim: int = 64, salt: str = "") -> None:
        self.dim = dim
        self.salt = salt

    def encode(self, texts: list[str], **kwargs: object) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in text.lower().replace(".", " ").replace("?", " ").split():
                out[i, int(hashlib.md5((self.salt + word).encode()).hexdigest(), 16) % self.dim] += 1.0
        return out


class SentenceTransformerEncoder:
    """A sentence-transformers model held by a user's own class, encoded with its defaults."""

    def __init__(self, folder: str) -> None:
        from sentence_transformers import SentenceTransformer

        self.model = SentenceTransformer(folder, device="cpu", local_files_only=True)

    def encode(self, texts: list[str], **kwargs: object) -> np.ndarray:
        return self.model.encode(texts, convert_to_numpy=True, show_progress_bar=False)
