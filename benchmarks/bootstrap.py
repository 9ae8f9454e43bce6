"""Benchmark: the vectorised paired bootstrap (bench.metrics.stats) against a straightforward Python loop over
resamples.

Workload of the acceptance criterion: 10,000 resamples × 1,000 queries × 8 systems against one baseline (binary
per-query values, as MRECALL@k gives). The loop version is the method's reference style: for every system, for every
resample, draw the indices, recompute both means, count the sign. Both run here, in the same process, and the ratio
is printed; with an even number of queries both consume the seeded stream identically, so their p-values agree
exactly (printed as a check).

    .venv/bin/python benchmarks/bootstrap.py [--queries 1000] [--systems 8] [--resamples 10000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from bench.metrics.stats import paired_bootstrap_many


def loop_bootstrap(a: np.ndarray, systems: np.ndarray, n_resamples: int, seed: int) -> list[float]:
    """Reference style: for each system, one Python iteration per resample (draw n indices with replacement,
    recompute both means, compare the sign); numpy only inside the iteration. Returns the p-values.

    The generator is re-seeded per system, so every system sees the same resamples, as in bench.metrics.stats."""
    n = len(a)
    p_values = []
    for b in systems:
        rng = np.random.default_rng(seed)
        observed = b.mean() - a.mean()
        same_sign = 0
        for _ in range(n_resamples):
            idx = rng.integers(0, n, size=n)
            d = b[idx].mean() - a[idx].mean()
            if (observed > 0 and d > 0) or (observed < 0 and d < 0):
                same_sign += 1
        p_values.append(1.0 - same_sign / n_resamples if observed != 0 else 1.0)
    return p_values


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--systems", type=int, default=8)
    ap.add_argument("--resamples", type=int, default=10_000)
    ap.add_argument("--repeats", type=int, default=5, help="timed repeats of the vectorised version (median shown)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    data_rng = np.random.default_rng(12345)
    base = (data_rng.random(args.queries) < 0.55).astype(np.float64)
    # System 0 is the baseline itself (p must be 1); system j redraws 20% of the queries with success rate
    # 0.45 + 0.05·j (the baseline has 0.55), so the differences run from negative to clearly positive.
    systems = np.stack([base.copy()] + [
        np.where(data_rng.random(args.queries) < 0.2, (data_rng.random(args.queries) < 0.45 + 0.05 * j), base)
        for j in range(1, args.systems)
    ]).astype(np.float64)

    times_ci, times_p = [], []
    for _ in range(args.repeats):
        t = time.perf_counter()
        res = paired_bootstrap_many(base, systems, args.resamples, args.seed, ci_method="bca", with_ci=True)
        times_ci.append(time.perf_counter() - t)
        t = time.perf_counter()
        paired_bootstrap_many(base, systems, args.resamples, args.seed, with_ci=False)
        times_p.append(time.perf_counter() - t)
    vec_ci, vec_p = statistics.median(times_ci), statistics.median(times_p)

    t = time.perf_counter()
    loop_p = loop_bootstrap(base, systems, args.resamples, args.seed)
    loop_time = time.perf_counter() - t

    print(f"workload: {args.resamples:,} resamples × {args.queries:,} queries × {args.systems} systems "
          f"(seed {args.seed})")
    print(f"vectorised, p-values only:        {vec_p:8.3f} s  (median of {args.repeats})")
    print(f"vectorised, p-values + BCa 95% CI: {vec_ci:8.3f} s  (median of {args.repeats})  "
          f"{'≤ 1 s: OK' if vec_ci <= 1.0 else '> 1 s: TOO SLOW'}")
    print(f"Python loop over resamples:       {loop_time:8.3f} s  (one run)")
    print(f"speed-up, loop / vectorised:      {loop_time / vec_p:8.1f}×  (p-values only; "
          f"{loop_time / vec_ci:.1f}× against p + CI)")
    same = all(abs(r.p_value - p) < 1e-12 for r, p in zip(res, loop_p, strict=True))
    print(f"p-values identical to the loop's: {same}")
    for j, r in enumerate(res):
        print(f"  system {j}: diff {100 * r.diff:+6.2f} pts  p = {r.p_value:.4f} (loop {loop_p[j]:.4f})  "
              f"CI [{100 * r.ci_low:+.2f}, {100 * r.ci_high:+.2f}]")


if __name__ == "__main__":
    main()
