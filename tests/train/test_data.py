"""Training data (bench/train/data.py): negatives never gold, rows gathered per batch from the store, padding."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bench.data.task import Split, Targets
from bench.models import BackboneConfig, QueryEncoder
from bench.train.config import TrainConfig
from bench.train.data import TrainingExamples, draw_batch, gather_rows
from bench.train.loop import Trainer


def _split(nested: list, d: int = 4, seed: int = 0) -> Split:
    x = np.random.default_rng(seed).standard_normal((len(nested), d)).astype(np.float32)
    return Split("train", [str(i) for i in range(len(nested))], Targets.from_nested(nested), vectors=x)


def test_a_negative_is_never_one_of_its_examples_gold_rows() -> None:
    """A 10-row corpus where each example's gold covers 6 rows (several docs per cluster): uniform draws would hit
    gold 60% of the time."""
    rng = np.random.default_rng(0)
    nested = [[[int(a), int(b)], [int(c)], [int(e), int(f), int(g)]]
              for a, b, c, e, f, g in (rng.choice(10, 6, replace=False) for _ in range(50))]
    ex = TrainingExamples.from_split(_split(nested))
    draws = 0
    for _ in range(40):
        idx = rng.choice(50, 16, replace=False)
        batch = draw_batch(ex, idx, 10, 0.5, rng)
        for row, i in enumerate(idx):
            gold = {d for cluster in nested[i] for d in cluster}
            assert not gold & set(batch.neg[row].tolist())
            assert set(batch.rows[row][batch.mask[row]].tolist()) <= gold
        draws += batch.neg.size
    assert draws == 40 * 16 * 3


def test_varying_answers_are_padded_and_masked() -> None:
    ex = TrainingExamples.from_split(_split([[[0]], [[1], [2], [3]], [[4], [5]]]))
    rows, mask = ex.sample(np.arange(3), np.random.default_rng(1))
    assert mask.tolist() == [[True, False, False], [True, True, True], [True, True, False]]
    assert sorted(rows[1].tolist()) == [1, 2, 3] and sorted(rows[2][:2].tolist()) == [4, 5]


class CountingStore:
    """A corpus store that serves rows through `gather` and refuses to be copied whole."""

    def __init__(self, vectors: np.ndarray) -> None:
        self.vectors = vectors
        self.shape = vectors.shape
        self.rows_read = 0

    def gather(self, rows: np.ndarray) -> np.ndarray:
        self.rows_read += np.asarray(rows).size
        return self.vectors[np.asarray(rows)]

    def __array__(self, *args: object, **kw: object) -> np.ndarray:
        raise AssertionError("the trainer copied the whole corpus matrix")

    def __len__(self) -> int:
        return len(self.vectors)


def test_the_trainer_gathers_only_the_rows_of_each_batch() -> None:
    rng = np.random.default_rng(0)
    corpus = rng.standard_normal((500, 8)).astype(np.float32)
    corpus /= np.linalg.norm(corpus, axis=1, keepdims=True)
    store = CountingStore(corpus)
    nested = [[[int(d)] for d in rng.choice(500, 3, replace=False)] for _ in range(40)]
    assert np.array_equal(gather_rows(store, np.array([[1, 2], [3, 4]])), corpus[[[1, 2], [3, 4]]])
    store.rows_read = 0
    torch.manual_seed(0)
    model = QueryEncoder(BackboneConfig(width=16, layers=1, heads=2), 4, 8, 0.5)
    cfg = TrainConfig(steps=5, batch_size=8, eval_every=5, val_fraction=0.1, checkpoint_every=0)
    Trainer(model, TrainingExamples.from_split(_split(nested)), store, cfg).run()
    per_step = 8 * 3 * 2  # positives + negatives
    val = 4 * 3 * 2
    assert store.rows_read == 5 * per_step + val


@pytest.mark.parametrize("bad", [{"reduction": "mean"}, {"objective": "nope"}, {"grad_accum": 0}])
def test_bad_training_settings_are_refused(bad: dict) -> None:
    with pytest.raises(ValueError):
        TrainConfig(**bad)
