"""MMR re-ranking: a hand-computed example, λ = 1 is the base ranking, the vectorised loop equals the formula
written out per candidate, and tuning picks the λ with the best validation MRECALL."""

from __future__ import annotations

import numpy as np
import pytest

from bench.data.task import Split, Targets
from bench.errors import BenchError
from bench.metrics import parse_metric
from bench.systems.context import RunContext
from bench.systems.records import ArrayDocuments, Candidates, QueryVectors
from bench.systems.rerank.mmr import MMRParams, MMRReranker, mmr
from bench.systems.stages import TuningData

DOCS = ArrayDocuments(np.array([[1, 0, 0], [1, 0, 0], [0, 1, 0]], dtype=np.float32))  # d1 duplicates d0
QUERY = QueryVectors.dense(np.array([[[0.8, 0.6, 0.0]]], dtype=np.float32))  # cos: d0 .8, d1 .8, d2 .6
BASE = Candidates(np.array([[0, 1, 2]]), np.array([[0.8, 0.8, 0.6]]))


def test_hand_computed_example() -> None:
    # λ = 0.5: step 1 picks d0 (0.4, tie with d1 broken by row); step 2: d1 = 0.4 − 0.5·1 = −0.1, d2 = 0.3 − 0 = 0.3
    out = mmr(BASE, QUERY, DOCS, 0.5)
    assert out.rows.tolist() == [[0, 2, 1]]
    assert out.scores[0].tolist() == pytest.approx([0.4, 0.3, -0.1])
    out.check()
    # λ = 0.9: d1 = 0.72 − 0.1 = 0.62 beats d2 = 0.54
    assert mmr(BASE, QUERY, DOCS, 0.9).rows.tolist() == [[0, 1, 2]]
    assert mmr(BASE, QUERY, DOCS, 0.5, out_depth=2).rows.tolist() == [[0, 2]]


def test_lambda_one_is_the_base_ranking_exactly() -> None:
    rng = np.random.default_rng(1)
    rows = np.stack([rng.permutation(50)[:20] for _ in range(7)])
    scores = -np.sort(-rng.random((7, 20)), axis=1).astype(np.float32)
    base = Candidates(rows, scores)
    docs = ArrayDocuments(rng.standard_normal((50, 8)).astype(np.float32))
    q = QueryVectors.dense(rng.standard_normal((7, 3, 8)).astype(np.float32))
    out = mmr(base, q, docs, 1.0)
    assert np.array_equal(out.rows, base.rows) and np.array_equal(out.scores, base.scores)


def _reference(rows: list[int], qvecs: np.ndarray, docs: np.ndarray, lam: float,
               variant: str = "harness") -> list[int]:
    """The MMR formula, one candidate at a time (float64): the greedy order of `rows`. harness: raw relevance,
    redundancy clamped at 0; reference: relevance ÷ the top candidate's, redundancy unclamped (the first pick is the
    most relevant)."""
    unit = docs / np.linalg.norm(docs, axis=1, keepdims=True)
    q = qvecs / np.linalg.norm(qvecs, axis=1, keepdims=True)
    chosen: list[int] = []
    left = [r for r in rows if r >= 0]
    top = max(max(float(unit[d] @ qj) for qj in q) for d in left)
    scale = top if variant == "reference" and top > 0 else 1.0
    while left:
        best, best_val = None, -np.inf
        for d in sorted(left):
            rel = max(float(unit[d] @ qj) for qj in q) / scale
            sims = [float(unit[d] @ unit[s]) for s in chosen]
            red = max([0.0] + sims) if variant == "harness" else max(sims, default=0.0)
            val = lam * rel - (1 - lam) * red
            if val > best_val + 1e-6:
                best, best_val = d, val
        chosen.append(best)  # type: ignore[arg-type]
        left.remove(best)  # type: ignore[arg-type]
    return chosen


def test_vectorised_equals_the_formula_with_multi_vector_queries_and_padding() -> None:
    rng = np.random.default_rng(3)
    n, c, d = 5, 12, 6
    docs = rng.standard_normal((40, d)).astype(np.float32)
    rows = np.stack([rng.permutation(40)[:c] for _ in range(n)])
    rows[2, 9:] = -1  # a short list
    scores = np.where(rows >= 0, -np.arange(c, dtype=np.float32)[None, :], -np.inf)
    vecs = rng.standard_normal((n, 3, d)).astype(np.float32)
    mask = np.array([[1, 1, 1], [1, 0, 0], [1, 1, 0], [1, 1, 1], [0, 1, 1]], dtype=bool)
    from bench.index import l2_normalise

    store = ArrayDocuments(l2_normalise(docs))
    out = mmr(Candidates(rows, scores), QueryVectors(vecs, mask), store, 0.7)
    out.check()
    for i in range(n):
        expect = _reference(rows[i].tolist(), vecs[i][mask[i]], docs, 0.7)
        got = [r for r in out.rows[i].tolist() if r >= 0]
        assert got == expect


def test_reference_variant_by_hand_and_against_the_formula() -> None:
    """variant=reference (the reference implementation's MMR): relevance ÷ the query's top relevance, no clamp.
    By hand at λ = 0.5 on BASE: relevances 1, 1, 0.75; step 1 picks d0 with 0.5·1 − 0.5·(−1) = 1 (an empty
    selection's redundancy is −1); step 2: d1 = 0.5 − 0.5·1 = 0, d2 = 0.375 − 0.5·0 = 0.375."""
    out = mmr(BASE, QUERY, DOCS, 0.5, variant="reference")
    assert out.rows.tolist() == [[0, 2, 1]] and out.scores[0].tolist() == pytest.approx([1.0, 0.375, 0.0])
    out.check()
    rng = np.random.default_rng(5)
    n, c, d = 8, 14, 5
    docs = rng.standard_normal((60, d)).astype(np.float32)
    rows = np.stack([rng.permutation(60)[:c] for _ in range(n)])
    rows[3, 10:] = -1
    scores = np.where(rows >= 0, -np.arange(c, dtype=np.float32)[None, :], -np.inf)
    vecs = rng.standard_normal((n, 2, d)).astype(np.float32)
    from bench.index import l2_normalise

    store = ArrayDocuments(l2_normalise(docs))
    q = QueryVectors.dense(vecs)
    ref = mmr(Candidates(rows, scores), q, store, 0.5, variant="reference")
    ours = mmr(Candidates(rows, scores), q, store, 0.5)
    ref.check()
    differ = 0
    for i in range(n):
        got = [r for r in ref.rows[i].tolist() if r >= 0]
        assert got == _reference(rows[i].tolist(), vecs[i], docs, 0.5, "reference")
        differ += got != [r for r in ours.rows[i].tolist() if r >= 0]
    assert differ > 0  # the two forms order these lists differently
    with pytest.raises(ValueError, match="variant must be one of harness, reference"):
        MMRParams(variant="normalised")
    assert MMRReranker(MMRParams(lam=0.5, variant="reference"), "mmr").info()["variant"] == "reference"


def test_tuning_picks_the_lambda_with_the_best_validation_mrecall() -> None:
    targets = Targets.from_nested([[[0, 1], [2]]])  # two answers: {d0 or d1} and {d2}
    split = Split("validation", ["q0"], targets)
    metric = parse_metric("MRECALL@2")
    data = TuningData(split, BASE, QUERY, targets, lambda c: float(metric.compute(c.rows, targets).mean()),
                      str(metric))
    reranker = MMRReranker(MMRParams(), "mmr")
    ctx = RunContext(task=None, corpus_embeddings=None, index=None)  # type: ignore[arg-type]
    record = reranker.tune(data, DOCS, ctx, keep=2)
    # λ = 0.5 and 0.75 reach both answers in the top 2 (MRECALL 1), λ = 0.9 does not (0): the largest best λ wins
    assert record["grid"] == {"0.5": 1.0, "0.75": 1.0, "0.9": 0.0}
    assert reranker.lam == 0.75 == record["lambda"]
    assert reranker.rerank(BASE, QUERY, DOCS, ctx, keep=2).rows.tolist() == [[0, 2]]
    grid_only_high = MMRReranker(MMRParams(grid=(0.9, 1.0)), "mmr")
    grid_only_high.tune(data, DOCS, ctx, keep=2)
    assert grid_only_high.lam == 1.0  # both score 0: the largest λ


def test_params_are_validated_and_fixed_lambda_skips_tuning() -> None:
    with pytest.raises(ValueError, match="λ must be in"):
        MMRParams(lam=1.5)
    assert MMRReranker(MMRParams(lam=0.5), "mmr").wants_tuning is False
    with pytest.raises(BenchError, match="needs document embeddings"):
        MMRReranker(MMRParams(lam=0.5), "mmr").rerank(BASE, None, None, None)  # type: ignore[arg-type]
