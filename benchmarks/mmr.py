"""Benchmark: MMR re-ranking (bench/systems/rerank/mmr.py) of 500 candidates for 1,000 queries, against the
arithmetic's limit and a per-query loop.

Workload of the acceptance criterion: 1,000 queries, 500 candidates each, 384-dim normalised document vectors (the
size of all-MiniLM-L6-v2), a 100,000-row document store read through `gather(rows)`, single-vector queries, λ = 0.75.
Two output depths: 100 (what a run with cutoffs ≤ 100 keeps) and 500 (the whole candidate list re-ordered).

- The arithmetic: a selection step compares every candidate with the document just picked, one candidates × dim
  product, so the greedy order to depth k costs n · k · C · d multiply-adds (2 FLOP each; ≈ 38 GFLOP for the top
  100). Its rate is printed beside the machine's float32 matmul peak measured in the same run (torch, a
  2,048² product, best of 5, at the run's thread count) — the speed this arithmetic would have if it were one
  large matrix product.
- The reference is the formula written per query with numpy inside (one matrix-vector product per selection step),
  the usual way MMR is written; it runs on the first `--ref-queries` queries and its per-query time is scaled to the
  workload. Both orders are compared on those queries (printed as a check).

    .venv/bin/python benchmarks/mmr.py [--queries 1000] [--candidates 500] [--dim 384] [--ref-queries 100]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch

from bench.systems.records import ArrayDocuments, Candidates, QueryVectors
from bench.systems.rerank.mmr import mmr


def reference(rows: np.ndarray, q: np.ndarray, docs: np.ndarray, lam: float, keep: int) -> list[int]:
    """One query: relevance by one matvec, then per step one matvec against the last selected document."""
    vecs = docs[rows]
    rel = vecs @ q
    red = np.zeros(len(rows), dtype=np.float32)
    taken = np.zeros(len(rows), dtype=bool)
    out = []
    for _ in range(keep):
        value = np.where(taken, -np.inf, lam * rel - (1 - lam) * red)
        best = value.max()
        i = int(np.flatnonzero(value == best)[np.argmin(rows[value == best])])
        out.append(int(rows[i]))
        taken[i] = True
        red = np.maximum(red, vecs @ vecs[i])
    return out


def matmul_peak(size: int = 2048, repeats: int = 5) -> float:
    """GFLOP/s of one float32 size × size matrix product (torch, the run's threads), best of `repeats`."""
    a = torch.randn(size, size)
    b = torch.randn(size, size)
    a @ b
    best = min(_timed(lambda: a @ b) for _ in range(repeats))
    return 2 * size**3 / best / 1e9


def _timed(fn: object) -> float:
    t = time.perf_counter()
    fn()  # type: ignore[operator]
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--candidates", type=int, default=500)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--corpus", type=int, default=100_000)
    ap.add_argument("--ref-queries", type=int, default=100)
    ap.add_argument("--lam", type=float, default=0.75)
    ap.add_argument("--repeats", type=int, default=3, help="timed calls of the harness per depth; the best counts")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    n, c, d = args.queries, args.candidates, args.dim
    docs = rng.standard_normal((args.corpus, d)).astype(np.float32)
    docs /= np.linalg.norm(docs, axis=1, keepdims=True)
    store = ArrayDocuments(docs)
    q = rng.standard_normal((n, d)).astype(np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    rows = np.stack([rng.choice(args.corpus, c, replace=False) for _ in range(n)])
    scores = -np.sort(-rng.random((n, c)), axis=1).astype(np.float32)
    cands = Candidates(rows, scores)
    queries = QueryVectors.dense(q[:, None, :])
    print(f"workload: {n:,} queries × {c} candidates, dim {d}, λ = {args.lam}; torch threads "
          f"{torch.get_num_threads()}; load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    mmr(Candidates(rows[:8], scores[:8]), QueryVectors.dense(q[:8, None, :]), store, args.lam, 10)  # warm-up
    peak = matmul_peak()
    print(f"matmul peak (torch float32 2048², best of 5): {peak:.1f} GFLOP/s")
    print(f"{'output depth':>12} {'ours (s)':>9} {'per query (ms)':>15} {'GFLOP':>6} {'GFLOP/s':>8} {'of peak':>8} "
          f"{'loop (s, scaled)':>17} {'loop/ours':>9}  same")
    for keep in (100, c):
        ours = min(_timed(lambda k=keep: mmr(cands, queries, store, args.lam, out_depth=k))
                   for _ in range(args.repeats))
        out = mmr(cands, queries, store, args.lam, out_depth=keep)
        gflop = 2 * n * keep * c * d / 1e9
        r = args.ref_queries
        t = time.perf_counter()
        ref = [reference(rows[i], q[i], docs, args.lam, keep) for i in range(r)]
        loop = (time.perf_counter() - t) * n / r
        same = all(out.rows[i].tolist() == ref[i] for i in range(r))
        print(f"{keep:>12} {ours:>9.2f} {1000 * ours / n:>15.2f} {gflop:>6.1f} {gflop / ours:>8.1f} "
              f"{gflop / ours / peak:>7.0%} {loop:>17.2f} {loop / ours:>8.1f}×  {same}")
    print(f"load average at the end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
