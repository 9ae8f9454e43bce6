"""Synthetic task generation: deterministic, shaped as docs/architecture.md §5 says."""

from __future__ import annotations

import numpy as np
import pytest

from bench.data.task import build_task
from bench.errors import BenchError
from tasks.synthetic import SyntheticParams, generate, orthogonal_rotations, random_rotation

SMALL = SyntheticParams(d=16, n_train=50, n_test=20, n_negatives=300, seed=3)


@pytest.mark.parametrize("kind", ["linear", "mlp"])
@pytest.mark.parametrize("setting", ["single", "multi", "ood"])
def test_same_seed_same_arrays(kind: str, setting: str) -> None:
    a, b = generate(kind, setting, SMALL), generate(kind, setting, SMALL)
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    c = generate(kind, setting, SyntheticParams(d=16, n_train=50, n_test=20, n_negatives=300, seed=4))
    assert not np.array_equal(a["corpus"], c["corpus"])


def test_corpus_holds_every_target_once() -> None:
    arrays = generate("linear", "single", SMALL)
    assert arrays["corpus"].shape == (5 * (50 + 20) + 300, 16)
    rows = np.concatenate([arrays["train_targets"].ravel(), arrays["test_targets"].ravel()])
    assert len(np.unique(rows)) == len(rows)


def test_linear_targets_are_identity_rotations_and_negations() -> None:
    arrays = generate("linear", "single", SMALL)
    x = arrays["test_x"]
    y = arrays["corpus"][arrays["test_targets"]]  # (n, 5, d)
    np.testing.assert_allclose(y[:, 0], x, atol=1e-5)
    np.testing.assert_allclose(y[:, 1], -y[:, 3], atol=1e-5)
    np.testing.assert_allclose(y[:, 2], -y[:, 4], atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(y[:, 1], axis=1), np.linalg.norm(x, axis=1), rtol=1e-4)  # rotation
    np.testing.assert_allclose(y[:, 1:].sum(axis=1), 0, atol=1e-4)  # T2..T5 cancel: no direction is near all


def test_mlp_rotations_are_frobenius_orthogonal() -> None:
    ma, mb, mc = orthogonal_rotations(np.random.default_rng(0), 32)
    for m in (ma, mb, mc):
        np.testing.assert_allclose(m @ m.T, np.eye(32), atol=1e-10)
    for a, b in ((ma, mb), (ma, mc), (mb, mc)):
        assert abs(np.sum(a * b)) < 1e-9
    q = random_rotation(np.random.default_rng(1), 8)
    np.testing.assert_allclose(q.T @ q, np.eye(8), atol=1e-10)


def _mean_pairwise_cos(y: np.ndarray) -> float:
    yn = y / np.linalg.norm(y, axis=-1, keepdims=True)
    g = np.einsum("nid,njd->nij", yn, yn)
    m = y.shape[1]
    return float((g.sum(axis=(1, 2)) - m).mean() / (m * (m - 1)))


def test_mlp_negation_spreads_the_targets() -> None:
    """With outputs 4 and 5 negated the targets are mutually orthogonal on average; the paper-text variant leaves
    them closer together (a mean pairwise cosine of about +0.04: +0.036 measured over 2,000 N(0, I) inputs at d = 128
    and at d = 1024)."""
    p = SyntheticParams(d=64, n_train=10, n_test=200, n_negatives=0)
    neg = generate("mlp", "single", p)
    paper = generate("mlp", "single", SyntheticParams(d=64, n_train=10, n_test=200, n_negatives=0,
                                                      mlp_variant="paper"))
    cos_neg = _mean_pairwise_cos(neg["corpus"][neg["test_targets"]])
    cos_paper = _mean_pairwise_cos(paper["corpus"][paper["test_targets"]])
    assert abs(cos_neg) < 0.01
    assert 0.03 < cos_paper < 0.06


def test_ood_tests_on_a_distribution_never_trained_on() -> None:
    arrays = generate("linear", "ood", SyntheticParams(d=16, n_train=400, n_test=400, n_negatives=0))
    # Laplace + noise has heavier tails than the training mixture: its kurtosis is higher
    def kurt(x: np.ndarray) -> float:
        z = (x - x.mean()) / x.std()
        return float((z**4).mean())
    assert kurt(arrays["test_x"]) > kurt(arrays["train_x"]) + 0.5


def test_task_loads_from_cache_identically() -> None:
    task = build_task("synthetic-mlp-multi", ["d=8", "n_train=20", "n_test=10", "n_negatives=50"])
    a, b = task.load(), task.load()
    np.testing.assert_array_equal(a.corpus.vectors, b.corpus.vectors)
    assert a.data_hash() == b.data_hash()
    assert len(a.split("test")) == 10 and a.split("test").targets.n_clusters.tolist() == [5] * 10


@pytest.mark.parametrize("bad", ["d=0", "d=-4", "n_test=0", "n_negatives=-1", "mlp_variant=other", "d=abc", "x=1"])
def test_bad_params_are_clear_errors(bad: str) -> None:
    with pytest.raises(BenchError, match="synthetic-linear-single"):
        build_task("synthetic-linear-single", [bad])
