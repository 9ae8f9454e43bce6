"""bench/models/reader.py: a frozen reader's token states and pooled query embedding, cached by content."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from bench.models.reader import FeatureQueries, frozen_reader
from bench.systems.retriever import build_retriever
from tests.support.tiny_lm import write_tiny_lm

TEXTS = ["who won the world cup in 2018 and 2014?", "where were the summer olympics held in 2012 and 2016",
         "which rivers flow through Paris?"]


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def test_batches_are_left_padded_with_a_mask_and_subsets_keep_their_rows() -> None:
    flat = np.arange(6 * 2, dtype=np.float16).reshape(6, 2)
    feats = FeatureQueries(flat, np.array([0, 1, 4, 6]), np.eye(3, dtype=np.float32))
    batch = feats.batch(np.array([1, 0]))
    assert batch["features"].shape == (2, 3, 2)
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [0, 0, 1]]
    assert batch["features"][1, 2].tolist() == [0.0, 1.0] and batch["features"][1, :2].abs().sum() == 0
    assert batch["pooled"].tolist() == [[0, 1, 0], [1, 0, 0]]
    sub = feats.subset(np.array([2, 0]))
    assert len(sub) == 2 and sub.get(0).tolist() == flat[4:6].tolist() and sub.get(1).tolist() == flat[:1].tolist()
    assert sub.pooled is not None and sub.pooled.tolist() == [[0, 0, 1], [1, 0, 0]]


def test_minilm_states_are_its_token_embeddings_and_pooled_is_its_query_vector() -> None:
    """Against a direct computation: the states are MiniLM's last layer on each question's own tokens, and their
    mean, normalised, is the minilm retriever's query embedding (MiniLM pools by the mean)."""
    reader = frozen_reader("minilm", 64)
    feats = reader.token_states(TEXTS)
    model = reader._model
    tokens = model.tokenizer(TEXTS)["input_ids"]
    assert [len(feats.get(i)) for i in range(len(TEXTS))] == [len(t) for t in tokens]
    with torch.inference_mode():
        one = model[0].auto_model(**model.tokenizer(TEXTS[:1], return_tensors="pt")).last_hidden_state[0]
    assert np.allclose(feats.get(0).astype(np.float32), one.numpy(), atol=2e-2)  # float16 storage
    query = build_retriever("minilm").encode(TEXTS, "query")
    assert feats.pooled is not None and np.allclose(feats.pooled, query, atol=1e-5)
    mean = np.stack([feats.get(i).astype(np.float32).mean(0) for i in range(len(TEXTS))])
    mean /= np.linalg.norm(mean, axis=1, keepdims=True)
    assert (mean * query).sum(1).min() > 0.999


def test_states_are_read_once_then_loaded_from_the_cache() -> None:
    from bench.storage.cache import cache_root

    def entries() -> set[Path]:
        return set((cache_root() / "features").glob("*.npz"))

    before = entries()
    reader = frozen_reader("minilm", 32)
    first = reader.token_states(TEXTS)
    (entry,) = entries() - before
    reader._model = None  # without the model only the cached entry can answer
    again = reader.token_states(TEXTS)
    assert entries() - before == {entry}
    assert np.array_equal(first.flat, again.flat) and np.array_equal(first.offsets, again.offsets)


def test_max_length_truncates_and_changes_the_identity() -> None:
    short, long = frozen_reader("minilm", 6), frozen_reader("minilm", 64)
    assert short.identity != long.identity
    assert max(len(short.token_states(TEXTS).get(i)) for i in range(len(TEXTS))) == 6


def test_a_causal_lm_folder_reads_its_last_hidden_states(tmp_path: Path) -> None:
    folder = write_tiny_lm(tmp_path / "lm", TEXTS, seed=0)
    reader = frozen_reader(str(folder), 64)
    assert reader.kind == "transformers" and reader.space == ""
    feats = reader.token_states(TEXTS)
    assert feats.pooled is None and feats.width == 32
    tok, lm = reader._model
    with torch.inference_mode():
        direct = lm(**tok(TEXTS[2:], return_tensors="pt")).last_hidden_state[0]
    assert np.allclose(feats.get(2).astype(np.float32), direct.numpy(), atol=1e-2)
