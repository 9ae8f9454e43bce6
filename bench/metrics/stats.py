"""Paired significance between retrieval systems: a vectorised, seeded paired bootstrap, and the relative gain Δ.

docs/architecture.md §4: resample the query indices with replacement (10,000 resamples), recompute both systems' means
on the same resample; p = 1 − (share of resamples whose difference has the observed sign, strictly). Ties count
against significance, so two identical systems get p = 1. The 95% confidence interval of the difference comes from the
same resamples (scipy.stats.bootstrap computes it from our bootstrap distribution: BCa by default, percentile on
request).

Every system compared against one baseline sees the *same* resampled index sets (one draw per resample, shared), so
a system's p-value does not depend on which other systems are in the table, and the same seed gives the same numbers.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from bench.errors import BenchError

N_RESAMPLES = 10_000
ALPHA = 0.05
CONFIDENCE = 0.95
CI_METHODS = ("bca", "percentile")
# Resamples drawn per block: bounds memory to _CHUNK × n counts. Part of the method (it fixes how the seeded stream
# is consumed), so changing it changes the resamples.
_CHUNK = 1000
# Differences within this distance of 0 are ties. Metric means are multiples of 1/(n·lcm(m)) ≥ ~1e-7 for the
# metrics here, so only float rounding noise (~1e-15) is absorbed, never a real difference.
_TIE = 1e-10


@dataclass(frozen=True)
class BootstrapResult:
    """One system B against a baseline A on the same queries."""

    mean_a: float
    mean_b: float
    diff: float  # mean_b − mean_a
    p_value: float
    ci_low: float
    ci_high: float
    n_queries: int
    n_resamples: int
    seed: int
    ci_method: str
    confidence: float = CONFIDENCE

    @property
    def significant(self) -> bool:
        """p < 0.05 (the paper's threshold)."""
        return self.p_value < ALPHA

    @property
    def rel_gain(self) -> float:
        return relative_gain(self.mean_a, self.mean_b)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "significant": self.significant, "rel_gain": _finite_or_none(self.rel_gain)}


def relative_gain(a: float, b: float) -> float:
    """Relative gain of system B over baseline A:  Δ = (B − A) / A.

    NaN when A = 0 (undefined; tables print "n/a"), so a baseline that solves nothing never shows an infinite gain.
    """
    if a == 0:
        return float("nan")
    return (b - a) / a


def resample_means(values: np.ndarray, n_resamples: int = N_RESAMPLES, seed: int = 0) -> np.ndarray:
    """Means of `values` (n,) or (n, s) over `n_resamples` bootstrap resamples of the n rows: (n_resamples, s).

    Each resample draws n row indices uniformly with replacement; its mean is counts·values / n, where counts[i] is
    how often row i was drawn. Vectorised in blocks of resamples (no Python loop over resamples): the counts of a
    block come from one bincount, the means from one matrix product. All columns share the same resamples.
    """
    v = np.asarray(values, dtype=np.float64)
    if v.ndim == 1:
        v = v[:, None]
    if v.ndim != 2 or v.shape[0] == 0:
        raise BenchError(f"the bootstrap needs per-query values of shape (n,) or (n, s) with n ≥ 1, got {v.shape}")
    if n_resamples <= 0:
        raise BenchError(f"n_resamples must be > 0, got {n_resamples}")
    n = v.shape[0]
    rng = np.random.default_rng(seed)
    out = np.empty((n_resamples, v.shape[1]), dtype=np.float64)
    for start in range(0, n_resamples, _CHUNK):
        c = min(_CHUNK, n_resamples - start)
        idx = rng.integers(0, n, size=(c, n))
        idx += np.arange(c, dtype=idx.dtype)[:, None] * n
        counts = np.bincount(idx.ravel(), minlength=c * n).reshape(c, n).astype(np.float64)
        out[start : start + c] = counts @ v
    out /= n
    return out


def bootstrap_p_value(observed: float, boot_diffs: np.ndarray) -> float:
    """p = 1 − (share of resampled differences with the observed difference's sign, strictly).

    A resampled difference of 0 never counts as the observed sign, and an observed difference of 0 has no sign, so
    p = 1 for it (two identical systems are never significant).
    """
    boot = np.asarray(boot_diffs, dtype=np.float64)
    if observed > _TIE:
        share = float(np.mean(boot > _TIE))
    elif observed < -_TIE:
        share = float(np.mean(boot < -_TIE))
    else:
        share = 0.0
    return 1.0 - share


@dataclass
class _Distribution:
    """What scipy.stats.bootstrap reads from a previous result (`bootstrap_distribution`), to reuse our resamples."""

    bootstrap_distribution: np.ndarray


def confidence_interval(diffs: np.ndarray, boot_diffs: np.ndarray, method: str = "bca",
                        confidence: float = CONFIDENCE) -> tuple[float, float]:
    """CI of the mean per-query difference B − A, from the resampled means `boot_diffs`.

    scipy.stats.bootstrap computes it with n_resamples=0 from our distribution (the documented way to compute another
    interval from existing resamples): "bca" (bias-corrected and accelerated, scipy's default) or "percentile" (the
    2.5th and 97.5th percentiles). A degenerate distribution (every resample equal, e.g. identical systems) gives
    the point interval [d, d].
    """
    if method not in CI_METHODS:
        raise BenchError(f"CI method must be one of {', '.join(CI_METHODS)}, got {method!r}")
    boot = np.asarray(boot_diffs, dtype=np.float64)
    d = np.asarray(diffs, dtype=np.float64)
    if np.ptp(boot) <= _TIE or np.ptp(d) <= _TIE:
        m = float(d.mean())
        return m, m
    from scipy import stats as sps  # here: scipy.stats takes ~0.4 s to import, and every run loads this module

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = sps.bootstrap((d,), np.mean, n_resamples=0, bootstrap_result=_Distribution(boot), vectorized=True,
                            confidence_level=confidence, method="BCa" if method == "bca" else "percentile")
    low, high = float(res.confidence_interval.low), float(res.confidence_interval.high)
    if not (np.isfinite(low) and np.isfinite(high)):  # BCa can fail on a very lopsided distribution
        low, high = (float(x) for x in np.percentile(boot, [50 * (1 - confidence), 50 * (1 + confidence)]))
    return low, high


def paired_bootstrap(a: np.ndarray, b: np.ndarray, n_resamples: int = N_RESAMPLES, seed: int = 0,
                     ci_method: str = "bca", confidence: float = CONFIDENCE) -> BootstrapResult:
    """Paired bootstrap test of system B against baseline A over the same queries (per-query values a, b).

    Resample the query indices with replacement `n_resamples` times; on each resample the difference of means is
    mean(b*) − mean(a*) = mean((b − a)*). With d = mean(b) − mean(a) observed:

        p = 1 − #{resamples r : sign(d*_r) = sign(d), d*_r ≠ 0} / n_resamples

    and the CI is that of the mean difference (see `confidence_interval`).
    """
    return paired_bootstrap_many(a, np.asarray(b, dtype=np.float64)[None, :], n_resamples, seed, ci_method,
                                 confidence)[0]


def paired_bootstrap_many(a: np.ndarray, systems: np.ndarray | Sequence[np.ndarray], n_resamples: int = N_RESAMPLES,
                          seed: int = 0, ci_method: str = "bca", confidence: float = CONFIDENCE,
                          with_ci: bool = True) -> list[BootstrapResult]:
    """`paired_bootstrap` of each row of `systems` (s, n) against baseline `a` (n,), on one shared set of resamples.

    One call draws the resamples once for all systems (`resample_means` over the (n, s) matrix of differences).
    """
    base = np.asarray(a, dtype=np.float64)
    others = np.asarray(systems, dtype=np.float64)
    if others.ndim == 1:
        others = others[None, :]
    if base.ndim != 1 or others.ndim != 2 or others.shape[1] != base.shape[0]:
        raise BenchError(f"paired values must cover the same queries: baseline {base.shape}, systems {others.shape}")
    diffs = (others - base[None, :]).T  # (n, s)
    boot = resample_means(diffs, n_resamples, seed)
    out: list[BootstrapResult] = []
    for j in range(others.shape[0]):
        observed = float(diffs[:, j].mean())
        low, high = (confidence_interval(diffs[:, j], boot[:, j], ci_method, confidence) if with_ci
                     else (float("nan"), float("nan")))
        out.append(BootstrapResult(
            mean_a=float(base.mean()), mean_b=float(others[j].mean()), diff=observed,
            p_value=bootstrap_p_value(observed, boot[:, j]), ci_low=low, ci_high=high, n_queries=len(base),
            n_resamples=n_resamples, seed=seed, ci_method=ci_method, confidence=confidence,
        ))
    return out


def _finite_or_none(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None
