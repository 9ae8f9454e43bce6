"""The frozen reader of a frozen-backbone query encoder: a pretrained model that reads each question once.

`-r finetune=frozen` trains AMER / Single-Query on text without touching a pretrained LM: the reader's last hidden
states of a question's tokens (one vector per token) are computed once, cached, and a small causal transformer (the
tiny backbone of the synthetic tasks) conditioned on them emits the query vectors. The reader is

- a sentence-transformers model — a dense retriever name (`minilm`, the default: the document encoder here, so the
  question is read in the space its passages were embedded by) or a folder with `modules.json` — whose token
  embeddings (`SentenceTransformer.encode(output_value="token_embeddings")`, before pooling) are the states; or
- any other transformers folder (a causal LM such as SmolLM2), whose base model's `last_hidden_state` is used.

The states are a cache entry (bench/storage/cache.py) keyed by the reader's identity (the sha256 of its files and
its settings), `max_length` and the sha256 of the texts: the same questions are never read twice.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.errors import BenchError
from bench.storage.cache import load_or_build_arrays, stable_hash

READER_VERSION = 2
_BATCH = 64


@dataclass
class FeatureQueries:
    """Per-query token states, ragged: query i is `flat[offsets[i]:offsets[i + 1]]` (tokens, width), float16; and,
    from a sentence-transformers reader, its pooled query embedding `pooled[i]` (float32; None otherwise)."""

    flat: np.ndarray
    offsets: np.ndarray
    pooled: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def width(self) -> int:
        return int(self.flat.shape[1])

    def get(self, i: int) -> np.ndarray:
        return self.flat[self.offsets[i]:self.offsets[i + 1]]

    def subset(self, idx: np.ndarray) -> FeatureQueries:
        parts = [self.get(int(i)) for i in idx]
        lengths = np.array([len(p) for p in parts], dtype=np.int64)
        flat = np.concatenate(parts) if parts else np.zeros((0, self.width), dtype=self.flat.dtype)
        return FeatureQueries(flat, np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
                              None if self.pooled is None else self.pooled[idx])

    def batch(self, idx: np.ndarray) -> dict[str, Any]:
        """`features` (B, L, width) float32 and `attention_mask` (B, L), left padded like token ids (the last real
        state at −1); `pooled` (B, d) when the reader gives one."""
        import torch

        parts = [self.get(int(i)) for i in idx]
        length = max(len(p) for p in parts)
        out = np.zeros((len(parts), length, self.width), dtype=np.float32)
        mask = np.zeros((len(parts), length), dtype=np.int64)
        for row, p in enumerate(parts):
            out[row, length - len(p):] = p
            mask[row, length - len(p):] = 1
        batch = {"features": torch.from_numpy(out), "attention_mask": torch.from_numpy(mask)}
        if self.pooled is not None:
            batch["pooled"] = torch.from_numpy(np.ascontiguousarray(self.pooled[np.asarray(idx)], dtype=np.float32))
        return batch


@dataclass
class FrozenReader:
    """A pretrained model that turns question texts into token states (module docstring)."""

    name: str  # as given: a dense retriever name or a model folder
    kind: str  # "sentence-transformers" | "transformers"
    identity: str  # sha256 of the model's files and the reading settings
    max_length: int
    _model: Any = None
    prompt: str = ""  # sentence-transformers: the retriever's query prompt (none for minilm)
    space: str = ""  # sentence-transformers: the embedding space of its pooled vectors (a document encoder's)

    def record(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "identity": self.identity, "max_length": self.max_length,
                "prompt": self.prompt, "space": self.space}

    def token_states(self, texts: list[str], console: Any = None) -> FeatureQueries:
        """The states of `texts`, read once and cached (content-keyed)."""
        digest = hashlib.sha256(json.dumps(texts, ensure_ascii=False).encode()).hexdigest()
        key = stable_hash({"reader": self.identity, "max_length": self.max_length, "texts": digest,
                           "version": READER_VERSION}, length=24)

        def build() -> dict[str, np.ndarray]:
            return self._read(texts, console)

        required = ("flat", "offsets", "pooled") if self.kind == "sentence-transformers" else ("flat", "offsets")
        arrays = load_or_build_arrays("features", key, build, required=required,
                                      info={"reader": self.record(), "texts": len(texts)})
        feats = FeatureQueries(arrays["flat"], arrays["offsets"], arrays.get("pooled"))
        if len(feats) != len(texts):
            raise BenchError(f"features {key}: holds {len(feats)} questions, expected {len(texts)}")
        return feats

    def _read(self, texts: list[str], console: Any) -> dict[str, np.ndarray]:
        import torch

        from bench.progress import STDERR, make_progress

        parts: list[np.ndarray] = []
        pooled: list[np.ndarray] = []
        with make_progress(console or STDERR) as progress, torch.inference_mode():
            bar = progress.add_task("read questions", total=len(texts), status=self.name)
            for start in range(0, len(texts), _BATCH):
                chunk = texts[start:start + _BATCH]
                states, pool = self._states(chunk)
                parts.extend(states)
                pooled.extend(pool)
                progress.advance(bar, len(chunk))
        lengths = np.array([len(p) for p in parts], dtype=np.int64)
        if len(parts) and lengths.min() == 0:
            raise BenchError(f"reader {self.name}: a question gave no tokens (question {int(lengths.argmin())})")
        width = parts[0].shape[1] if parts else 0
        flat = np.concatenate(parts).astype(np.float16) if parts else np.zeros((0, width), dtype=np.float16)
        out: dict[str, np.ndarray] = {"flat": flat,
                                      "offsets": np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)}
        if self.kind == "sentence-transformers":
            vecs = np.stack(pooled).astype(np.float32) if pooled else np.zeros((0, 0), dtype=np.float32)
            # unit length, as the harness compares every embedding by cosine
            out["pooled"] = vecs / np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12)
        return out

    def _states(self, texts: list[str]) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Token states of each text (its real tokens only) and, from sentence-transformers, its query embedding."""
        model = self._model
        if self.kind == "sentence-transformers":
            # every output: the token embeddings before pooling (trimmed to the question's real tokens) and the
            # sentence embedding, which is the retriever's own query vector (same prompt, pooling, normalisation)
            out = model.encode(texts, prompt=self.prompt, output_value=None, batch_size=_BATCH,
                               show_progress_bar=False, convert_to_numpy=False)
            return ([o["token_embeddings"][o["attention_mask"].bool()].float().cpu().numpy() for o in out],
                    [o["sentence_embedding"].float().cpu().numpy() for o in out])
        tok, lm = model
        enc = tok(texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")
        hidden = lm(**enc).last_hidden_state.float()
        mask = enc["attention_mask"].bool()
        return [hidden[i][mask[i]].cpu().numpy() for i in range(len(texts))], []


def frozen_reader(name: str, max_length: int) -> FrozenReader:
    """The reader `name`: a registered dense retriever (minilm, a preset, `st:…`), a sentence-transformers folder, or
    any transformers folder (a causal LM); loaded offline."""
    from bench.registry import RETRIEVERS

    folder = Path(name).expanduser()
    st_name = None
    if folder.is_dir():
        if (folder / "modules.json").is_file():
            st_name = f"st:{folder.resolve()}"
    elif RETRIEVERS.has(name):
        st_name = name
    if st_name is not None:
        from bench.systems.retriever import build_retriever

        retriever = build_retriever(st_name)
        dense = getattr(retriever, "dense", None)
        if dense is None:
            raise BenchError(f"reader {name!r}: not a sentence-transformers model (a dense retriever or a folder "
                             "with modules.json), nor a transformers model folder")
        model = dense.model()
        model.max_seq_length = max_length
        prompt = dense.query_prompt or ""
        space = dense.space()
        identity = stable_hash({"model": dense.source.identity, "kind": "sentence-transformers",
                                "max_length": max_length, "prompt": prompt, "space": space}, length=32)
        return FrozenReader(name, "sentence-transformers", identity, max_length, model, prompt, space)
    from bench.models.text import load_tokenizer, resolve_lm, weights_hash

    path = resolve_lm(name)
    from bench.models.backbone import load_pretrained

    lm = load_pretrained(str(path)).eval()
    tok = load_tokenizer(path)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    identity = stable_hash({"model": weights_hash(path), "kind": "transformers", "max_length": max_length},
                           length=32)
    return FrozenReader(name, "transformers", identity, max_length, (tok, lm))
