"""Trained query encoders on disk: safetensors files in the cache, keyed by a hash of everything that shaped them.

The key covers the retriever name and its training parameters, the task name, its data hash (corpus and splits)
and description, the seed and this format's version — so `bench run` reuses a model exactly when retraining would
rebuild the same one. A file carries its own model config and training record in the safetensors metadata, so
inference needs neither the training data nor the original command line.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from bench.errors import BenchError
from bench.storage.atomic import atomic_path
from bench.storage.cache import cache_root, stable_hash

FORMAT_VERSION = 1
_META_KEY = "multitarget_bench"


def checkpoint_key(config: dict[str, Any]) -> str:
    """A 20-hex-digit hash of the training config (JSON with sorted keys) and the checkpoint format version."""
    return stable_hash({"checkpoint_format": FORMAT_VERSION, **config}, length=20)


def checkpoint_path(retriever: str, key: str) -> Path:
    """`<cache root>/checkpoints/<retriever>-<key>.safetensors` (the name cut to 80 characters: the key is unique)."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in retriever)[:80]
    return cache_root() / "checkpoints" / f"{safe}-{key}.safetensors"


@dataclass
class Checkpoint:
    """Weights plus the metadata stored with them (`model` config, `key_config`, training record)."""

    state_dict: dict[str, torch.Tensor]
    meta: dict[str, Any]


def save_checkpoint(path: str | Path, state_dict: dict[str, torch.Tensor], meta: dict[str, Any]) -> Path:
    """Write weights and JSON metadata atomically (a crash leaves the old file or none, never half a file)."""
    from safetensors.torch import save_file

    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in state_dict.items()}
    payload = {_META_KEY: json.dumps({"format": FORMAT_VERSION, **meta}, sort_keys=True, default=str)}
    path = Path(path)
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=payload)
    return path


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Read a checkpoint written by `save_checkpoint`; a missing or damaged file is one clear BenchError."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise BenchError(f"checkpoint {path} does not exist")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as fh:
            raw = (fh.metadata() or {}).get(_META_KEY)
            state = {k: fh.get_tensor(k) for k in fh.keys()}
    except (SafetensorError, OSError, ValueError) as exc:
        raise BenchError(f"checkpoint {path}: not a readable safetensors file ({exc})") from None
    if raw is None:
        raise BenchError(f"checkpoint {path}: no multitarget-bench metadata (field {_META_KEY!r} missing)")
    try:
        meta = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise BenchError(f"checkpoint {path}: metadata field {_META_KEY!r} is not valid JSON ({exc})") from None
    if meta.get("format") != FORMAT_VERSION:
        raise BenchError(f"checkpoint {path}: format {meta.get('format')!r}, this version reads {FORMAT_VERSION}")
    if "model" not in meta:
        raise BenchError(f"checkpoint {path}: metadata lacks field 'model'")
    return Checkpoint(state, meta)
