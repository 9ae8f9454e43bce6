"""Diagnostic: in which order does a trained AMER put the answers of a query, and does that order depend on how
many answers the query has? Run it on the result files of vector-task runs (`-t m=lo..hi`).

Why: a learned stop (`-r stop=learned`) trains each query's c answers onto its first c vectors (prefix matching). If
the order it settles into is *nested* — the answers at positions 1..c are the same for every count c, as in
(T_2, T_1, T_3, T_4, T_5) — the vectors do not depend on the count and only the stop does. If it is not, as in
(T_2, T_1) for two answers but (T_2, T_3, T_1) for three, the vector at position 2 changes with the count, and an
input near a count boundary (x_0 ≈ 0) gets a vector between T_1 and T_3 that finds neither. Fixed-m AMER matches
answers to any of its m_pred positions and has no such pressure.

For each count c it prints the most common orders (position → the answer whose target vector is nearest, `–` when
none has cosine ≥ `--min-cos`), whether the commonest orders are nested, and for each query that missed an answer
at rank k (per_query MRECALL@k < 1) its count, the vectors it searched, how far the count-defining coordinates lie
from 0 (in standard deviations) and each answer's best cosine among the searched vectors.

    .venv/bin/python benchmarks/stop_order.py RESULT.json [RESULT.json …] [--k 10] [--min-cos 0.8]
"""

from __future__ import annotations

import argparse
import json
import math
from collections import Counter
from pathlib import Path

import numpy as np
import torch

from bench.data.task import build_task
from bench.models.query_encoder import QueryEncoder
from bench.models.stop_head import StopQueryEncoder
from bench.train.checkpoint import load_checkpoint
from tasks.synthetic import target_range


def nearest_answers(vecs: np.ndarray, answers: np.ndarray, min_cos: float) -> tuple[int, ...]:
    """Per position, the index of the answer whose vector is nearest (−1 when no cosine reaches `min_cos`)."""
    sims = vecs @ answers.T
    best = sims.argmax(axis=1)
    return tuple(int(j) if sims[i, j] >= min_cos else -1 for i, j in enumerate(best))


def is_nested(orders: dict[int, tuple[int, ...]]) -> bool:
    """True when, for every count c, positions 1..c of the commonest order of count c hold answers 0..c−1 and the
    positions they share with the order of every larger count hold the same answers."""
    counts = sorted(orders)
    for c in counts:
        if set(orders[c][:c]) != set(range(c)):
            return False
        for larger in counts:
            if larger > c and orders[larger][:c] != orders[c][:c]:
                return False
    return True


def diagnose(path: Path, k: int, min_cos: float) -> None:
    result = json.loads(path.read_text())
    checkpoint = (result.get("retriever_info") or {}).get("checkpoint")
    if not checkpoint:
        raise SystemExit(f"{path}: field retriever_info.checkpoint is missing: not a trained AMER run")
    ckpt = load_checkpoint(checkpoint)
    learned = ckpt.meta["model"].get("stop_head", False)
    model = (StopQueryEncoder if learned else QueryEncoder).from_config(ckpt.meta["model"])
    model.load_state_dict(ckpt.state_dict)
    model.eval()
    task = build_task(result["task"], [f"{key}={value}" for key, value in result["task_params"].items()])
    data = task.load()
    split = data.split(result.get("split", "test"))
    if split.vectors is None:
        raise SystemExit(f"{path}: task {result['task']} has text queries; this diagnostic reads vector tasks")
    corpus = np.asarray(data.corpus.vectors, dtype=np.float32)
    corpus = corpus / np.linalg.norm(corpus, axis=1, keepdims=True)
    info = result["extra"]["vectors_per_query"]
    m_max = int(info["m_max"])
    with torch.no_grad():
        vecs = QueryEncoder.generate(model, torch.from_numpy(np.asarray(split.vectors, dtype=np.float32)),
                                     m_max).numpy()
    searched = np.asarray(info["per_query"])
    targets = split.targets
    n = len(split.vectors)
    answers: list[np.ndarray] = [np.zeros((c, corpus.shape[1]), dtype=np.float32) for c in targets.n_clusters]
    for q, c, doc in zip(targets.query, targets.cluster, targets.doc, strict=True):
        answers[q][c] = corpus[doc]  # one target vector per answer cluster on synthetic tasks
    print(f"== {path}\n   system {result.get('system', result['retriever'])}, "
          f"stop {info['stop']}, m_max {m_max}, {n} queries")
    commonest: dict[int, tuple[int, ...]] = {}
    for c in sorted(set(targets.n_clusters.tolist())):
        rows = np.flatnonzero(targets.n_clusters == c)
        tally = Counter(nearest_answers(vecs[q], answers[q], min_cos) for q in rows)
        commonest[c] = tally.most_common(1)[0][0]
        shown = ", ".join(f"({' '.join('–' if j < 0 else f'T{j + 1}' for j in order)}) {100 * k_ / len(rows):.0f}%"
                          for order, k_ in tally.most_common(3))
        print(f"   {c} answers ({len(rows)} queries): {shown}")
    nested = ("yes" if is_nested(commonest) else "no") if learned else "n/a (fixed m searches every vector)"
    print(f"   commonest orders nested: {nested}")
    lo, hi = target_range(str(result["task_params"].get("m", "5")))
    bits = max(1, math.ceil(math.log2(hi - lo + 1))) if hi > lo else 0
    x = np.asarray(split.vectors)
    scale = x[:, :bits].std(axis=0) if bits else np.ones(0)
    missed = np.flatnonzero(np.asarray(result["per_query"][f"MRECALL@{k}"]) < 1)
    print(f"   queries missing an answer at rank {k}: {len(missed)}")
    for q in missed:
        c = int(targets.n_clusters[q])
        kept = vecs[q, : int(searched[q])]
        best = (kept @ answers[q].T).max(axis=0)
        edge = (np.abs(x[q, :bits]) / scale).min() if bits else float("nan")
        print(f"   query {q}: {c} answers, searched {int(searched[q])}, nearest count boundary {edge:.3f} sd, "
              f"best cosine per answer {' '.join(f'{v:.2f}' for v in best)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", nargs="+", type=Path)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--min-cos", type=float, default=0.8)
    args = parser.parse_args()
    torch.set_num_threads(1)
    for path in args.results:
        diagnose(path, args.k, args.min_cos)


if __name__ == "__main__":
    main()
