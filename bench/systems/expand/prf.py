"""`prf`: RM3 pseudo-relevance feedback (Lavrenko & Croft 2001; Abdul-Jaleel et al. 2004, "UMass at TREC 2004"),
offline, on the term statistics of the harness's BM25 index (bench/index/bm25.py, bm25s). No maintained Java-free
package
does RM3, so this is ours; the parameter names and defaults follow Anserini's RM3 (fb_docs 10, fb_terms 10,
original query weight 0.5).

For a question Q with tokens (after the index's lower-casing, stopwords and stemming) and its top `fb_docs` BM25
documents R (first pass, scores s_d > 0):

    P(w | d)   = tf(w, d) / |d|                                   maximum likelihood, |d| = tokens of d
    P(d | Q)   = s_d / Σ_{d' ∈ R} s_{d'}                          the first-pass score as document weight (Anserini)
    RM1(w)     = Σ_{d ∈ R} P(d | Q) · P(w | d)                    kept for the `fb_terms` largest, renormalised to 1
    P(w | Q)   = tf(w, Q) / |Q|
    RM3(w)     = α · P(w | Q) + (1 − α) · RM1(w)                  α = `orig_weight`

A text retriever (dense or bm25) takes text, not weights, so the weighted query is written as text: the question
verbatim, then the surface word of each term w repeated r(w) − tf(w, Q) more times, with

    r(w) = min(max_repeat, round(RM3(w) / (α / |Q|)))

i.e. RM3's weights in units of one question token (BM25 sums repeated query tokens, so bm25 scores the expanded text
as Σ_w r(w) · bm25(w, d)); expansion terms are written in descending weight. The surface word of a stem is its most
frequent spelling in the feedback documents. `max_repeat=1` adds each new term once (plain term expansion).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from bench.errors import BenchError
from bench.index.bm25 import BM25Index, BM25Params, load_or_build_bm25
from bench.registry import register_expander
from bench.systems.stages import Expander

if TYPE_CHECKING:
    from bench.data.task import Split
    from bench.systems.context import RunContext


@dataclass(frozen=True)
class PRFParams:
    """RM3 parameters (Anserini's defaults) and how the weighted query is written as text. The first pass is BM25
    with bench.index.bm25's defaults (the index the `bm25` retriever uses, so it is built and cached once)."""

    fb_docs: int = 10
    fb_terms: int = 10
    orig_weight: float = 0.5
    max_repeat: int = 3

    def __post_init__(self) -> None:
        if self.fb_docs < 1 or self.fb_terms < 1 or self.max_repeat < 1:
            raise ValueError("fb_docs, fb_terms and max_repeat must be ≥ 1")
        if not 0 < self.orig_weight <= 1:
            raise ValueError(f"orig_weight must be in (0, 1], got {self.orig_weight}")


@dataclass
class RM3Model:
    """The weighted query of one question: term id → RM3 weight, and the pieces it was built from."""

    weights: dict[int, float]
    query_tf: dict[int, int]
    rm1: dict[int, float]
    feedback_rows: list[int]


def rm3(index: BM25Index, question: str, fb_docs: int = 10, fb_terms: int = 10, orig_weight: float = 0.5) -> RM3Model:
    """The RM3 query model of `question` over `index` (formula in the module docstring)."""
    q_ids = index.query_term_ids(question)
    query_tf = dict(Counter(q_ids))
    if not q_ids:
        return RM3Model({}, {}, {}, [])
    scores, rows = index.search([question], fb_docs)
    keep = (rows[0] >= 0) & (scores[0] > 0)
    rows_fb, s_fb = rows[0][keep], scores[0][keep].astype(np.float64)
    rm1: dict[int, float] = {}
    if len(rows_fb):
        doc_w = s_fb / s_fb.sum()
        acc: dict[int, float] = {}
        for row, w_d in zip(rows_fb.tolist(), doc_w.tolist(), strict=True):
            terms, tf, _ = index.doc_terms(row)
            if np.isnan(tf).any():
                raise BenchError(f"prf: BM25 method {index.params.method!r} does not keep term frequencies; "
                                 f"use method=lucene or robertson")
            p = tf / tf.sum()
            for t, pw in zip(terms.tolist(), p.tolist(), strict=True):
                acc[t] = acc.get(t, 0.0) + w_d * pw
        top = sorted(acc.items(), key=lambda kv: (-kv[1], kv[0]))[:fb_terms]
        total = sum(v for _, v in top)
        rm1 = {t: v / total for t, v in top} if total > 0 else {}
    n_q = len(q_ids)
    weights: dict[int, float] = {}
    for t, c in query_tf.items():
        weights[t] = orig_weight * c / n_q
    for t, v in rm1.items():
        weights[t] = weights.get(t, 0.0) + (1 - orig_weight) * v
    return RM3Model(weights, query_tf, rm1, [int(r) for r in rows_fb])


def repetitions(model: RM3Model, orig_weight: float, max_repeat: int) -> dict[int, int]:
    """r(w) − tf(w, Q) for every term that gains occurrences: RM3 weights in units of one question token."""
    n_q = sum(model.query_tf.values())
    if n_q == 0:
        return {}
    unit = orig_weight / n_q
    out: dict[int, int] = {}
    for t, w in model.weights.items():
        r = min(max_repeat, int(np.floor(w / unit + 0.5)))
        extra = r - model.query_tf.get(t, 0)
        if extra > 0:
            out[t] = extra
    return out


class SurfaceForms:
    """Stem → its most frequent spelling in given texts, tokenised like the index (lower-case, splitter,
    stopwords, stemmer)."""

    def __init__(self, params: BM25Params) -> None:
        self.params = params
        self.pattern = re.compile(params.splitter)
        self.stemmer: Any = None
        if params.stemmer not in ("", "none"):
            import Stemmer

            self.stemmer = Stemmer.Stemmer(params.stemmer)
        self.counts: dict[str, Counter[str]] = {}

    def add(self, text: str) -> None:
        for word in self.pattern.findall(text.lower() if self.params.lower else text):
            stem = self.stemmer.stemWord(word) if self.stemmer is not None else word
            self.counts.setdefault(stem, Counter())[word] += 1

    def word(self, stem: str) -> str:
        c = self.counts.get(stem)
        if not c:
            return stem
        return min(c.items(), key=lambda kv: (-kv[1], kv[0]))[0]


def expansion_text(question: str, model: RM3Model, extra: dict[int, int], index: BM25Index,
                   forms: SurfaceForms) -> str:
    """The question, then each gaining term's surface word `extra[t]` times, by descending RM3 weight."""
    order = sorted(extra, key=lambda t: (-model.weights[t], t))
    words = [w for t in order for w in [forms.word(index.term(t))] * extra[t]]
    return f"{question.strip()} {' '.join(words)}".strip() if words else question


def _texts_of_rows(corpus: Any, rows: set[int]) -> dict[int, str]:
    """The `title text` of the wanted corpus rows, in one pass over the corpus stream."""
    from bench.data.corpus import document_text

    out: dict[int, str] = {}
    if not rows:
        return out
    last = max(rows)
    for i, (_, title, text) in enumerate(corpus.iter_texts()):
        if i in rows:
            out[i] = document_text(title, text)
        if i >= last:
            break
    return out


@register_expander("prf", description="RM3 pseudo-relevance feedback on BM25 term statistics (offline): question + "
                   "weighted expansion terms from the top BM25 passages", params=PRFParams)
class PRFExpander(Expander):
    """question → question + RM3 expansion terms (one text per query)."""

    def __init__(self, params: Any, name: str) -> None:
        super().__init__(params, name)
        self._record: dict[str, Any] = {}

    def expand(self, texts: list[str], split: Split, ctx: RunContext) -> list[list[str]]:
        p: PRFParams = self.params
        corpus = ctx.task.corpus
        if corpus.source is None:
            raise BenchError(f"expander prf needs a text corpus; task {ctx.task.name!r} is a vector task")
        index = load_or_build_bm25(corpus, BM25Params(), recipe=ctx.recipe)  # the bm25 retriever's defaults
        models = [rm3(index, q, p.fb_docs, p.fb_terms, p.orig_weight) for q in texts]
        extras = [repetitions(m, p.orig_weight, p.max_repeat) for m in models]
        forms = SurfaceForms(index.params)
        for text in _texts_of_rows(corpus, {r for m in models for r in m.feedback_rows}).values():
            forms.add(text)
        out = [[expansion_text(q, m, e, index, forms)] for q, m, e in zip(texts, models, extras, strict=True)]
        added = [sum(e.values()) for e in extras]
        self._record.update(method="rm3", bm25=index.describe())
        self._record.setdefault("by_split", {})[split.name] = {
            "queries": len(texts), "mean_added_tokens": round(float(np.mean(added)) if added else 0.0, 3),
            "queries_without_feedback": sum(not m.feedback_rows for m in models)}
        return out

    def info(self) -> dict[str, Any]:
        return dict(self._record)
