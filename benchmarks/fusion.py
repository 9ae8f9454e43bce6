"""Benchmark: each fusion method (bench/systems/fusion/) against ranx's `fuse` on the same input, measured in one run.

Workload of the acceptance criterion: 1,000 queries × 5 ranked lists × depth 100 (doc ids drawn from a 100,000-row
corpus, unique within a list; scores descending). For ranx the same lists are `ranx.Run`s; building them is timed
apart (it is not fusion), the first `fuse` call (numba compilation) is shown apart, and the ratio is the median of
the timed repeats: ranx time / ours. Round-robin has no ranx counterpart (ranx has no round-robin method): its time
is printed alone. The fused scores of every method are checked against ranx's on every query before timing.

    .venv/bin/python benchmarks/fusion.py [--queries 1000] [--lists 5] [--depth 100] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np

from bench.systems.fusion.combmax import combmax
from bench.systems.fusion.combsum import combsum
from bench.systems.fusion.round_robin import round_robin
from bench.systems.fusion.rrf import rrf
from bench.systems.records import Candidates, PerVectorLists


def make_lists(n: int, m: int, depth: int, corpus: int, seed: int) -> PerVectorLists:
    rng = np.random.default_rng(seed)
    # unique ids within a list: a random offset plus distinct steps (cheap, no per-list permutation of the corpus)
    steps = np.sort(rng.choice(corpus // depth, size=(n, m, depth)), axis=2) * depth + np.arange(depth)
    rows = (steps + rng.integers(0, corpus, size=(n, m, 1))) % corpus
    perm = rng.permuted(rows, axis=2)
    scores = -np.sort(-rng.random((n, m, depth)), axis=2).astype(np.float32)
    return PerVectorLists(perm.astype(np.int64), scores, np.ones((n, m), dtype=bool))


def to_ranx(lists: PerVectorLists) -> list:
    from ranx import Run

    n, m, k = lists.shape
    runs = []
    for j in range(m):
        runs.append(Run({f"q{q}": {f"d{int(r)}": float(s) for r, s in zip(lists.rows[q, j], lists.scores[q, j],
                                                                          strict=True)} for q in range(n)}))
    return runs


def timed(fn: Callable[[], object], repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def agree(ours: Candidates, theirs, n: int, rel: float = 1e-5) -> bool:
    for q in range(n):
        got = {f"d{int(r)}": float(s) for r, s in zip(ours.rows[q], ours.scores[q], strict=True) if r >= 0}
        want = dict(theirs[f"q{q}"])
        if got.keys() != want.keys():
            return False
        if any(abs(got[d] - want[d]) > rel * max(1.0, abs(want[d])) for d in want):
            return False
    return True


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--lists", type=int, default=5)
    ap.add_argument("--depth", type=int, default=100)
    ap.add_argument("--corpus", type=int, default=100_000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    from ranx import fuse

    n, m, k = args.queries, args.lists, args.depth
    lists = make_lists(n, m, k, args.corpus, args.seed)
    out_depth = m * k  # keep every fused document, as ranx does
    t = time.perf_counter()
    runs = to_ranx(lists)
    build = time.perf_counter() - t
    print(f"workload: {n:,} queries × {m} lists × depth {k}; ranx Run construction {build:.2f} s (not timed below)")
    methods = [
        ("rrf(k=60)", lambda: rrf(lists, out_depth, 60), dict(method="rrf", norm=None, params={"k": 60})),
        ("combmax", lambda: combmax(lists, out_depth), dict(method="max", norm=None)),
        ("combsum", lambda: combsum(lists, out_depth), dict(method="sum", norm=None)),
        ("combsum(norm=minmax)", lambda: combsum(lists, out_depth, "minmax"), dict(method="sum", norm="min-max")),
        ("combmax(norm=minmax)", lambda: combmax(lists, out_depth, "minmax"), dict(method="max", norm="min-max")),
    ]
    print(f"{'method':<22} {'ours (s)':>9} {'ranx (s)':>9} {'ranx 1st call':>13} {'ranx/ours':>9}  same scores")
    for name, ours_fn, kwargs in methods:
        t = time.perf_counter()
        first = fuse(runs=runs, **kwargs)  # numba compiles on the first call of each method
        first_time = time.perf_counter() - t
        ours_t, ours = timed(ours_fn, args.repeats)
        ranx_t, theirs = timed(lambda kw=kwargs: fuse(runs=runs, **kw), args.repeats)
        same = agree(ours, theirs.run if hasattr(theirs, "run") else first.run, n)  # type: ignore[arg-type]
        print(f"{name:<22} {ours_t:>9.3f} {ranx_t:>9.3f} {first_time:>13.2f} {ranx_t / ours_t:>8.1f}×  {same}")
    rr_t, _ = timed(lambda: round_robin(lists, k), args.repeats)
    print(f"{'round-robin':<22} {rr_t:>9.3f} {'–':>9} {'–':>13} {'–':>9}  (ranx has no round-robin)")


if __name__ == "__main__":
    main()
