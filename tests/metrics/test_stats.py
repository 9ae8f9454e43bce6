"""The paired bootstrap and Δ, on small arrays whose answers can be worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bench.errors import BenchError
from bench.metrics.stats import (
    _CHUNK,
    bootstrap_p_value,
    confidence_interval,
    paired_bootstrap,
    paired_bootstrap_many,
    relative_gain,
    resample_means,
)


def test_relative_gain_by_hand() -> None:
    assert relative_gain(0.5, 0.6) == pytest.approx(0.2)  # (0.6 − 0.5) / 0.5
    assert relative_gain(0.8, 0.6) == pytest.approx(-0.25)  # a loss is negative
    assert relative_gain(0.4, 0.4) == 0.0
    assert math.isnan(relative_gain(0.0, 0.3))  # undefined against a baseline that solves nothing


def test_p_value_counts_only_the_observed_sign_strictly() -> None:
    boot = np.array([0.2, -0.1, 0.0, 0.3])
    assert bootstrap_p_value(0.5, boot) == pytest.approx(1 - 2 / 4)  # 0.2 and 0.3 are > 0; the 0.0 tie does not count
    assert bootstrap_p_value(-0.5, boot) == pytest.approx(1 - 1 / 4)  # only −0.1 has the observed (negative) sign
    assert bootstrap_p_value(0.0, boot) == 1.0  # no observed sign: never significant
    assert bootstrap_p_value(0.1, np.zeros(10)) == 1.0  # every resample a tie → p = 1


def test_float_noise_is_a_tie_not_a_sign() -> None:
    """d = [0.1, 0.2, −0.3] sums to 5.6e-17 in floats, not 0: the observed difference must still count as none."""
    a = np.array([0.3, 0.2, 0.6])
    b = a + np.array([0.1, 0.2, -0.3])
    res = paired_bootstrap(a, b, n_resamples=2000, seed=1)
    assert abs(res.diff) < 1e-15
    assert res.p_value == 1.0 and not res.significant


def test_identical_systems_get_p_one() -> None:
    rng = np.random.default_rng(3)
    a = (rng.random(200) < 0.4).astype(float)
    res = paired_bootstrap(a, a.copy(), seed=0, ci_method="bca")
    assert res.diff == 0.0
    assert res.p_value == 1.0 and not res.significant
    assert (res.ci_low, res.ci_high) == (0.0, 0.0)


def test_sign_convention_both_directions() -> None:
    """B − A: B solving every query A misses is a positive, significant difference; swapping them is negative and
    significant too (the p-value follows the observed sign)."""
    a = np.zeros(4)
    b = np.ones(4)
    up = paired_bootstrap(a, b, n_resamples=1000, seed=0)
    down = paired_bootstrap(b, a, n_resamples=1000, seed=0)
    assert up.diff == 1.0 and up.p_value == 0.0 and up.significant
    assert down.diff == -1.0 and down.p_value == 0.0 and down.significant
    assert (up.ci_low, up.ci_high) == (1.0, 1.0)  # every resample gives exactly 1
    assert math.isnan(up.rel_gain)  # A = 0
    assert down.rel_gain == -1.0  # (0 − 1) / 1


def test_two_queries_by_hand() -> None:
    """a = [0, 0], b = [1, 0]: the observed difference is 0.5. A resample of 2 queries draws query 2 twice with
    probability 1/4, and then the difference is 0 (a tie); otherwise it is > 0. So p = 1 − 3/4 = 1/4."""
    res = paired_bootstrap(np.array([0.0, 0.0]), np.array([1.0, 0.0]), n_resamples=10_000, seed=0)
    assert res.diff == 0.5
    assert res.p_value == pytest.approx(0.25, abs=0.015)  # 3.5 standard errors of a 10,000-draw share
    assert not res.significant


def test_seeded_and_deterministic() -> None:
    rng = np.random.default_rng(0)
    a = (rng.random(50) < 0.5).astype(float)
    b = np.where(rng.random(50) < 0.3, 1.0, a)
    r1 = paired_bootstrap(a, b, n_resamples=3000, seed=5, ci_method="percentile")
    r2 = paired_bootstrap(a, b, n_resamples=3000, seed=5, ci_method="percentile")
    r3 = paired_bootstrap(a, b, n_resamples=3000, seed=6, ci_method="percentile")
    assert r1 == r2
    assert (r1.p_value, r1.ci_low, r1.ci_high) != (r3.p_value, r3.ci_low, r3.ci_high)


def test_resample_means_are_means_of_index_resamples() -> None:
    """The bincount/matrix-product shortcut gives exactly the mean over explicitly drawn indices."""
    values = np.random.default_rng(1).random((7, 3))
    got = resample_means(values, n_resamples=_CHUNK + 5, seed=11)
    rng = np.random.default_rng(11)
    idx = rng.integers(0, 7, size=(_CHUNK, 7))
    np.testing.assert_allclose(got[:_CHUNK], values[idx].mean(axis=1), rtol=0, atol=1e-12)
    idx2 = rng.integers(0, 7, size=(5, 7))
    np.testing.assert_allclose(got[_CHUNK:], values[idx2].mean(axis=1), rtol=0, atol=1e-12)
    assert got.shape == (_CHUNK + 5, 3)


def test_systems_share_resamples() -> None:
    """A system's result does not depend on which other systems are compared with it."""
    rng = np.random.default_rng(2)
    a = (rng.random(80) < 0.5).astype(float)
    s1 = np.where(rng.random(80) < 0.2, 1.0, a)
    s2 = np.where(rng.random(80) < 0.2, 0.0, a)
    both = paired_bootstrap_many(a, np.stack([s1, s2]), n_resamples=2000, seed=4)
    alone = paired_bootstrap(a, s2, n_resamples=2000, seed=4)
    assert both[1] == alone


def test_ci_methods() -> None:
    rng = np.random.default_rng(8)
    d = rng.normal(0.05, 0.3, 300)
    boot = resample_means(d, 4000, seed=0)[:, 0]
    lo, hi = confidence_interval(d, boot, "percentile")
    assert (lo, hi) == pytest.approx(tuple(np.percentile(boot, [2.5, 97.5])))
    blo, bhi = confidence_interval(d, boot, "bca")
    assert blo < d.mean() < bhi
    assert abs(blo - lo) < 0.01 and abs(bhi - hi) < 0.01  # a near-symmetric case: BCa ≈ percentile
    with pytest.raises(BenchError, match="CI method"):
        confidence_interval(d, boot, "normal")


def test_bad_shapes_are_one_clear_error() -> None:
    with pytest.raises(BenchError, match="same queries"):
        paired_bootstrap(np.zeros(3), np.zeros(4))
    with pytest.raises(BenchError, match="n ≥ 1"):
        resample_means(np.zeros(0))
