"""bench/systems/object_encoder.py: an in-process encoder object as a retriever — its identity (and so its cache of
corpus embeddings), the role methods, and one clear error for an object that does not follow the protocol."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from bench.api import evaluate
from bench.errors import BenchError
from bench.storage.cache import cache_root
from bench.systems.object_encoder import ObjectEncoderParams, ObjectEncoderRetriever, object_system
from tests.support.encoders import HashingEncoder


def _space(obj: object, **params: object) -> str:
    return ObjectEncoderRetriever(obj, ObjectEncoderParams(**params)).space()  # type: ignore[arg-type]


class TorchEncoder(torch.nn.Module):
    def __init__(self, seed: int) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.proj = torch.nn.Linear(8, 4)

    def encode(self, texts: list[str]) -> torch.Tensor:
        x = torch.tensor([[float(len(t) % (i + 2)) for i in range(8)] for t in texts])
        return self.proj(x)


def test_identity_is_the_name_else_class_settings_and_weights() -> None:
    assert _space(HashingEncoder(salt="a")) == _space(HashingEncoder(salt="a"))
    assert _space(HashingEncoder(salt="a")) != _space(HashingEncoder(salt="b"))  # a public setting
    assert _space(TorchEncoder(0)) == _space(TorchEncoder(0))
    assert _space(TorchEncoder(0)) != _space(TorchEncoder(1))  # the weights, hashed
    assert _space(HashingEncoder(salt="a"), name="mine") == _space(HashingEncoder(salt="b"), name="mine")
    assert _space(HashingEncoder(), name="mine") != _space(HashingEncoder(), name="mine", query_prompt="q: ")
    system = object_system(HashingEncoder(salt="a"))
    assert system.name.startswith("encoder:HashingEncoder-") and system.retriever_meta.kind == "dense"
    assert object_system(HashingEncoder(), {"name": "my-encoder"}).name == "encoder:my-encoder"


def test_role_methods_and_tensor_outputs() -> None:
    class Roles(HashingEncoder):
        def encode_query(self, texts: list[str]) -> np.ndarray:
            return self.encode(["query " + t for t in texts])

        def encode_document(self, texts: list[str]) -> np.ndarray:
            return self.encode(texts)

    r = ObjectEncoderRetriever(Roles(), ObjectEncoderParams())
    assert not np.array_equal(r.encode(["a b"], "query"), r.encode(["a b"], "document"))
    t = ObjectEncoderRetriever(TorchEncoder(0), ObjectEncoderParams())
    assert t.encode(["abc", "de"], "query").shape == (2, 4)


@pytest.mark.robustness(case="`bench.evaluate` given an object without encode(), or whose encode() returns the wrong "
                             "shape or raises", outcome="one BenchError naming the class and the protocol")
def test_objects_outside_the_protocol_are_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(BenchError, match="no encode"):
        evaluate(object(), task="limit-small", results_dir=tmp_path)

    class Flat(HashingEncoder):
        def encode(self, texts: list[str], **kwargs: object) -> np.ndarray:
            return np.zeros(len(texts))

    class Broken(HashingEncoder):
        def encode(self, texts: list[str], **kwargs: object) -> np.ndarray:
            raise RuntimeError("CUDA out of memory")

    with pytest.raises(BenchError, match=r"Flat.encode returned shape \(46,\)"):
        evaluate(Flat(), task="limit-small", results_dir=tmp_path)
    with pytest.raises(BenchError, match="Broken.encode failed on 46 texts: RuntimeError: CUDA out of memory"):
        evaluate(Broken(), task="limit-small", results_dir=tmp_path)
    with pytest.raises(BenchError, match="unknown parameter"):
        evaluate(HashingEncoder(), task="limit-small", results_dir=tmp_path, steps=3)


def test_a_rerun_reuses_the_cached_corpus_embeddings(tmp_path: Path, cache: Path, shared_data: Path) -> None:
    first = evaluate(HashingEncoder(salt="x"), task="limit-small", results_dir=tmp_path)
    keys = sorted(p.name for p in (cache_root() / "embeddings").iterdir())
    second = evaluate(HashingEncoder(salt="x"), task="limit-small", results_dir=tmp_path)
    assert sorted(p.name for p in (cache_root() / "embeddings").iterdir()) == keys  # nothing new encoded
    assert second.record.per_query == first.record.per_query
    evaluate(HashingEncoder(salt="y"), task="limit-small", results_dir=tmp_path)
    assert len(list((cache_root() / "embeddings").iterdir())) == len(keys) + 1  # another object, another space
