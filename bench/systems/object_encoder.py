"""An encoder object from a notebook as a retriever: anything with the sentence-transformers / mteb encoder method
`encode(texts) -> array` (and, when it has them, `encode_query` / `encode_document` for the two roles, as
sentence-transformers ≥ 5 models do) is wrapped as a `TextEncoderRetriever`, so `bench.evaluate(model, task=...)`
measures it exactly as a registered text encoder, without packaging a plugin.

**Identity.** Corpus embeddings are cached by their space (bench/index/encode.py), so the space must name what makes
the vectors. With `name=` it is that name (your promise that the name stands for these weights and settings: give a
new name when they change). Without it, it is a content hash of the object: its class (module and qualified name),
its public settings (attributes of simple types: str, int, float, bool, None and tuples of them) and the sha256 of
every torch weight of the object and of the torch modules it holds as attributes (names, dtypes, shapes and bytes).
Either way the prompts and the document format are part of it. The system is named `encoder:<name>`, or
`encoder:<Class>-<8 hex digits of that hash>`.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from bench.errors import BenchError
from bench.index.encode import DEFAULT_SHARD_SIZE
from bench.params import parse_params, positive
from bench.registry import PluginMeta
from bench.storage.cache import stable_hash
from bench.systems.build import System
from bench.systems.names import StageRef, SystemSpec
from bench.systems.retriever import TextEncoderRetriever

PREFIX = "encoder:"
ENCODER_VERSION = 1  # part of every space: bump it when the way texts reach the object changes


@dataclass(frozen=True)
class ObjectEncoderParams:
    name: str | None = None  # what the object is (its identity); default: a content hash of the object
    query_prompt: str = ""  # prepended to every query text
    document_prompt: str = ""  # prepended to every document text ("title text")
    shard_size: int = DEFAULT_SHARD_SIZE

    def __post_init__(self) -> None:
        positive(self, shard_size=self.shard_size)
        if self.name is not None and not self.name.strip():
            raise ValueError("name must not be empty")


_SIMPLE = (str, int, float, bool, type(None))


def _simple(value: Any) -> bool:
    if isinstance(value, tuple):
        return all(_simple(v) for v in value)
    return isinstance(value, _SIMPLE)


def _torch_modules(obj: Any) -> list[tuple[str, Any]]:
    """The object itself and its attributes that are torch modules (torch is imported only if the caller did)."""
    torch = sys.modules.get("torch")
    if torch is None:
        return []
    found = [("", obj)] if isinstance(obj, torch.nn.Module) else []
    if not found:
        found += [(k, v) for k, v in sorted(getattr(obj, "__dict__", {}).items())
                  if isinstance(v, torch.nn.Module)]
    return found


def weights_sha256(obj: Any) -> str | None:
    """sha256 over every torch weight of the object (and of the modules it holds): names, dtypes, shapes, bytes."""
    modules = _torch_modules(obj)
    if not modules:
        return None
    import torch

    digest = hashlib.sha256()
    for prefix, module in modules:
        for key, tensor in sorted(module.state_dict().items()):
            if not isinstance(tensor, torch.Tensor):
                continue
            t = tensor.detach().to("cpu").contiguous()
            digest.update(f"{prefix}.{key}|{t.dtype}|{tuple(t.shape)}|".encode())
            digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def object_identity(obj: Any) -> dict[str, Any]:
    """What makes the object's vectors, when no name is given: class, public simple settings, torch weights."""
    cls = type(obj)
    settings = {k: v for k, v in sorted(getattr(obj, "__dict__", {}).items())
                if not k.startswith("_") and _simple(v)}
    return {"class": f"{cls.__module__}.{cls.__qualname__}", "settings": settings, "weights": weights_sha256(obj)}


def _as_array(out: Any, n: int, what: str) -> np.ndarray:
    if hasattr(out, "detach"):  # a torch tensor (on any device, in any float type)
        out = out.detach().to("cpu").float().numpy()
    try:
        arr = np.asarray(out, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise BenchError(f"{what} returned {type(out).__name__}, not an array of numbers ({exc})") from None
    if arr.ndim != 2 or arr.shape[0] != n:
        raise BenchError(f"{what} returned shape {arr.shape} for {n} texts; the encoder protocol is "
                         "encode(texts) -> array (len(texts), dim)")
    return arr


class ObjectEncoderRetriever(TextEncoderRetriever):
    """A text encoder object held in memory: one vector per query, documents in the same space."""

    def __init__(self, model: Any, params: ObjectEncoderParams) -> None:
        if not callable(getattr(model, "encode", None)):
            raise BenchError(f"{type(model).__name__} has no encode(texts) method: give an encoder object "
                             "(sentence-transformers / mteb protocol) or a system name such as 'minilm'")
        self.model = model
        identity: Any = params.name if params.name is not None else object_identity(model)
        self.identity = identity
        digest = stable_hash({"identity": identity, "version": ENCODER_VERSION})
        label = params.name if params.name is not None else f"{type(model).__name__}-{digest[:8]}"
        super().__init__(params, PREFIX + label, label)
        self.model_label = label
        self.digest = digest

    def _method(self, role: str) -> tuple[Callable[..., Any], str]:
        own = "encode_query" if role == "query" else "encode_document"
        if callable(getattr(self.model, "encode_query", None)) and callable(getattr(self.model, "encode_document",
                                                                                    None)):
            return getattr(self.model, own), own
        return self.model.encode, "encode"

    def encode(self, texts: list[str], role: str, advance: Callable[[int], None] | None = None) -> np.ndarray:
        prompt = self.params.query_prompt if role == "query" else self.params.document_prompt
        method, method_name = self._method(role)
        what = f"{type(self.model).__name__}.{method_name}"
        try:
            out = method([prompt + t for t in texts] if prompt else list(texts))
        except BenchError:
            raise
        except Exception as exc:
            raise BenchError(f"{what} failed on {len(texts)} texts: {type(exc).__name__}: {exc}") from None
        arr = _as_array(out, len(texts), what)
        if advance is not None:
            advance(len(texts))
        return arr

    def space(self) -> str:
        settings = {"encoder": f"object/{ENCODER_VERSION}", "identity": self.identity,
                    "query_prompt": self.params.query_prompt, "document_prompt": self.params.document_prompt,
                    "document_format": "title text"}
        return f"{self.name}@{stable_hash(settings)}"

    def encoder_record(self) -> dict[str, Any]:
        return {"model_id": self.model_label, "class": f"{type(self.model).__module__}.{type(self.model).__qualname__}",
                "identity": self.identity}

    def info(self) -> dict[str, Any]:
        query_method, _ = self._method("query")
        return {"model_id": self.model_label, "in_process": True, "identity": self.identity,
                "identity_sha256": self.digest, "query_method": getattr(query_method, "__name__", "encode")}


META = PluginMeta(PREFIX, "an encoder object evaluated in-process (bench.evaluate); not re-runnable by name",
                  "dense", ObjectEncoderRetriever, ObjectEncoderParams, {"in_process": True})


def object_system(model: Any, params: Any = ()) -> System:
    """A built system whose retriever is the encoder object (no stages)."""
    parsed = parse_params(ObjectEncoderParams, "encoder object", params)
    retriever = ObjectEncoderRetriever(model, parsed)
    return System(SystemSpec(StageRef(retriever.name)), retriever, META)
