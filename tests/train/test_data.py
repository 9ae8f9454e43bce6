"""Training data (bench/train/data.py): negatives never gold, rows gathered per batch from the store, padding."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bench.data.task import Split, Targets
from bench.models import BackboneConfig, QueryEncoder
from bench.train.config import TrainConfig
from bench.train.data import Batch, BatchSampler, TrainingExamples, draw_batch, fixed_negatives, gather_rows
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


def _batch_of_counts(counts: list[int], t: int = 4) -> Batch:
    b = len(counts)
    mask = np.arange(t)[None, :] < np.asarray(counts)[:, None]
    rows = np.where(mask, np.arange(b * t).reshape(b, t), 0)
    return Batch(np.arange(b), rows, mask, rows + 100, np.zeros((b, t - 1), dtype=bool))


def test_majority_batching_keeps_only_the_modal_answer_count() -> None:
    batch = _batch_of_counts([2, 3, 3, 1, 3, 2])
    kept = batch.majority()
    assert kept.idx.tolist() == [1, 2, 4]  # the minority examples (2, 1, 2 answers) are dropped
    assert kept.rows.shape == (3, 3) and kept.mask.all() and kept.use_pred.shape == (3, 2)
    assert kept.neg.tolist() == (kept.rows + 100).tolist()
    # a tie goes to the count met first in the batch
    assert _batch_of_counts([2, 3, 3, 2]).majority().idx.tolist() == [0, 3]
    assert _batch_of_counts([4, 1, 1, 4]).majority().idx.tolist() == [0, 3]
    one = _batch_of_counts([1, 1, 1]).majority()
    assert one.idx.tolist() == [0, 1, 2] and one.use_pred.shape == (3, 0)


def test_sorted_sampler_runs_each_epoch_from_few_answers_to_many() -> None:
    key = np.array([3, 1, 2, 1, 3, 2, 1, 2, 3, 1])
    sampler = BatchSampler(10, 5, np.random.default_rng(0), sort_key=key)
    epochs = [np.concatenate([sampler.next(), sampler.next()]) for _ in range(3)]
    for order in epochs:
        assert sorted(order.tolist()) == list(range(10))
        assert key[order].tolist() == sorted(key.tolist())
    assert len({tuple(e.tolist()) for e in epochs}) > 1  # examples of one count in a fresh order each epoch


def test_fixed_negatives_are_the_same_every_epoch_and_follow_their_clusters() -> None:
    nested = [[[10 * q + c] for c in range(3)] for q in range(20)]
    ex = TrainingExamples.from_split(_split(nested))
    fixed = fixed_negatives(ex, 200, np.random.default_rng(0))
    assert fixed.shape == (20, 3)
    rng = np.random.default_rng(1)
    pairs: dict[int, set] = {}
    for _ in range(5):  # five epochs of the same examples, clusters reshuffled each time
        batch = draw_batch(ex, np.arange(20), 200, 0.0, rng, fixed_neg=fixed)
        for i in range(20):
            got = set(zip(batch.rows[i].tolist(), batch.neg[i].tolist(), strict=True))
            assert pairs.setdefault(i, got) == got  # each target keeps its own negative
            assert set(batch.neg[i].tolist()) == set(fixed[i].tolist())
            assert not {10 * i, 10 * i + 1, 10 * i + 2} & set(batch.neg[i].tolist())
    fresh = [draw_batch(ex, np.arange(20), 200, 0.0, rng).neg for _ in range(2)]
    assert not np.array_equal(fresh[0], fresh[1])  # the harness's negatives: redrawn every batch
    single = draw_batch(ex, np.arange(20), 200, 0.0, rng, select=lambda r, m: (r[:, :1], m[:, :1]), fixed_neg=fixed)
    for i in range(20):  # one target (Single-Query): its own paired negative
        assert (int(single.rows[i, 0]), int(single.neg[i, 0])) in pairs[i]


def test_first_gold_document_is_always_the_positive() -> None:
    nested = [[[1, 2, 3], [4, 5]], [[6], [7, 8, 9]]]
    ex = TrainingExamples.from_split(_split(nested))
    rng = np.random.default_rng(0)
    seen_random: set[int] = set()
    for _ in range(30):
        rows, mask = ex.sample(np.arange(2), rng, first=True)
        assert sorted(rows[0].tolist()) == [1, 4] and sorted(rows[1].tolist()) == [6, 7]
        rows, _ = ex.sample(np.arange(2), rng)
        seen_random |= set(rows.ravel().tolist())
    assert seen_random == set(range(1, 10))  # by default any gold document of a cluster
