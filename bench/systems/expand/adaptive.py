"""`adaptive:<llm|subqueries|prf>`: expand a query only when a gate predicts that expansion helps it.

Query expansion helps some queries and hurts others, and an LLM expander costs a call per query. Following the idea
of M-Solomon ("Let Multimodal Embedders Learn When to Augment Query via Adaptive Query Augmentation", arXiv
2511.02358: learn, per query, whether to augment), this stage wraps one of the expanders (`llm`, `subqueries`,
`prf`) with a per-query gate:

- **What the gate sees**: the embedding of the query text by a dense encoder (`features`, default `minilm`, the
  offline default; the query text alone, never its answers), standardised with the training mean and deviation.
- **What it is trained on**: up to `train_queries` queries of the task's *train* split (a seeded sample). Each is
  retrieved twice by the `judge` retriever (default `minilm`; `-r …judge=bm25` for a lexical system), once as
  written and once expanded by the wrapped expander; its label is 1 when the expanded query's answer recall
  Recall@`recall_k` is strictly higher, else 0.
- **The gate**: logistic regression p(expand | x) = σ(w·z + b), z the standardised embedding, fitted by L-BFGS
  (scipy) on the mean log-loss + (`l2` / 2n)·‖w‖² (the bias is not penalised); deterministic. A test query is
  expanded when p ≥ `threshold`; every other query keeps its text and costs no LLM call.
- **Recorded** (`extra.expander`): the gate's training (queries, share labelled "helps", training accuracy, the
  wrapped expander's own requests for it), and per evaluated split the queries expanded, their share, and the LLM
  calls made and saved against always expanding.

The fitted gate is cached (`<cache>/gates/<key>.npz`) keyed by the task data, the wrapped expander's identifying
parameters, and the gate's parameters and seed; a rerun fits nothing and sends no request.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from bench.device import resolve
from bench.errors import BenchError
from bench.metrics import parse_metric
from bench.registry import EXPANDERS, register_expander
from bench.storage.cache import load_or_build_arrays, stable_hash
from bench.systems.context import RunContext
from bench.systems.names import identity_params
from bench.systems.retriever import VectorRetriever, build_retriever
from bench.systems.stages import Expander

if TYPE_CHECKING:
    from bench.data.task import Split

WRAPPED = ("llm", "subqueries", "prf")
LLM_EXPANDERS = ("llm", "subqueries")


@dataclass(frozen=True)
class GateParams:
    """The gate's settings (module docstring); the wrapped expander's own parameters sit beside them."""

    judge: str = "minilm"  # retriever whose answer recall, with and without expansion, labels the train queries
    features: str = "minilm"  # dense retriever whose query embedding the gate sees
    recall_k: int = 10  # expansion "helps" a train query when its Recall@recall_k rises
    train_queries: int = 200  # train queries the gate is fitted on (seeded sample); each costs one expansion
    l2: float = 1.0
    threshold: float = 0.5

    def __post_init__(self) -> None:
        if self.recall_k < 1 or self.train_queries < 2:
            raise ValueError("recall_k must be ≥ 1 and train_queries ≥ 2")
        if self.l2 < 0 or not 0 < self.threshold < 1:
            raise ValueError("l2 must be ≥ 0 and threshold in (0, 1)")


# ------------------------------------------------------------------------------------------------------- the gate
@dataclass
class Gate:
    """A fitted logistic regression on standardised features."""

    weights: np.ndarray  # (d + 1,): w then b
    mean: np.ndarray
    scale: np.ndarray

    def probability(self, x: np.ndarray) -> np.ndarray:
        z = (np.asarray(x, dtype=np.float64) - self.mean) / self.scale
        return _sigmoid(z @ self.weights[:-1] + self.weights[-1])


def _sigmoid(t: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * t))  # = 1 / (1 + e^{−t}), without overflow


def fit_gate(x: np.ndarray, y: np.ndarray, l2: float = 1.0) -> Gate:
    """Logistic regression of y ∈ {0, 1} on x: minimise (1/n) Σ log(1 + e^{−s_i t_i}) + (l2 / 2n)·‖w‖², t = w·z + b,
    s = 2y − 1, z the standardised x; L-BFGS from zero (deterministic). One class only gives w = 0 and the bias
    of that class's prior, clipped (no finite optimum)."""
    from scipy.optimize import minimize

    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    n, d = x.shape
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale < 1e-12] = 1.0
    z = np.hstack([(x - mean) / scale, np.ones((n, 1))])
    if y.min() == y.max():
        w = np.zeros(d + 1)
        w[-1] = 10.0 if y[0] == 1 else -10.0
        return Gate(w, mean, scale)
    s = 2.0 * y - 1.0
    reg = np.ones(d + 1)
    reg[-1] = 0.0

    def objective(w: np.ndarray) -> tuple[float, np.ndarray]:
        t = z @ w
        loss = np.logaddexp(0.0, -s * t).mean() + 0.5 * l2 / n * float(np.sum(reg * w * w))
        grad = z.T @ (-s * _sigmoid(-s * t)) / n + l2 / n * reg * w
        return float(loss), grad

    res = minimize(objective, np.zeros(d + 1), jac=True, method="L-BFGS-B", options={"maxiter": 500})
    return Gate(res.x, mean, scale)


# --------------------------------------------------------------------------------------------------- the stage
class AdaptiveExpander(Expander):
    """Expands the queries its gate selects with the wrapped expander; the others keep their text."""

    wrapped = ""

    def __init__(self, params: Any, name: str) -> None:
        super().__init__(params, name)
        meta, _ = EXPANDERS.get(self.wrapped)
        inner_params = None
        if meta.params is not None:
            inner_params = meta.params(**{f.name: getattr(params, f.name) for f in dataclasses.fields(meta.params)})
        self.inner: Expander = meta.factory(inner_params, meta.name)
        self.inner_params = inner_params
        self.gate: Gate | None = None
        self._record: dict[str, Any] = {"wrapped": self.wrapped}
        self._encoder: VectorRetriever | None = None

    # -- training -----------------------------------------------------------------------------------------------
    def _features(self, texts: list[str], ctx: RunContext) -> np.ndarray:
        if self._encoder is None:
            encoder = build_retriever(self.params.features)
            if not isinstance(encoder, VectorRetriever):
                raise BenchError(f"expander {self.name}: features={self.params.features!r} has no query embedding; "
                                 "name a dense retriever (e.g. minilm)")
            encoder.place(resolve(ctx.device, source="cli"))
            self._encoder = encoder
        plain = RunContext(task=ctx.task, corpus_embeddings=None, index=None, seed=ctx.seed, device=ctx.device,
                           console=ctx.console)
        return np.asarray(self._encoder.encode_texts(texts, plain))

    def _recall(self, split: Split, expanded: list[list[str]] | None, ctx: RunContext) -> np.ndarray:
        """Per-query Recall@recall_k of `split` retrieved by the judge, as written or with `expanded` texts."""
        if ctx.services is None:
            raise BenchError(f"expander {self.name} labels its training queries by retrieving them, which needs the "
                             "pipeline's services (run it through `bench run` or bench.evaluate)")
        depth = min(self.params.recall_k, len(ctx.task.corpus))
        cands = ctx.services.retrieve(self.params.judge, split, depth, expanded)
        return parse_metric(f"Recall@{self.params.recall_k}").compute(cands.rows, split.targets)

    def _cache_key(self, ctx: RunContext) -> str:
        gate = {f.name: getattr(self.params, f.name) for f in dataclasses.fields(GateParams)}
        return stable_hash(["gate", 1, self.wrapped, [list(kv) for kv in identity_params(self.inner_params)], gate,
                            ctx.task.name, ctx.task.data_hash(), ctx.seed])

    def fit(self, ctx: RunContext) -> Gate:
        """Fit the gate on the train split (or load the one this configuration fitted before)."""
        if "train" not in ctx.task.splits:
            raise BenchError(f"expander {self.name} fits its gate on the train split, and task {ctx.task.name!r} has "
                             "none (for a BEIR-style task such as limit-small, set -t train_fraction=0.3)")
        train = ctx.task.split("train")
        if train.texts is None:
            raise BenchError(f"expander {self.name}: task {ctx.task.name!r} has vector queries, no texts to expand")
        n = min(self.params.train_queries, len(train))
        idx = np.sort(np.random.default_rng([ctx.seed, 14]).choice(len(train), n, replace=False))
        sample = train.subset(idx, "train-gate")
        before = dict(self.inner.info())

        def build() -> dict[str, np.ndarray]:
            texts = list(sample.texts)  # type: ignore[arg-type]
            expanded = self.inner.expand(texts, sample, ctx)
            gain = self._recall(sample, expanded, ctx) - self._recall(sample, None, ctx)
            labels = (gain > 1e-9).astype(np.int64)
            x = self._features(texts, ctx)
            gate = fit_gate(x, labels, self.params.l2)
            return {"weights": gate.weights, "mean": gate.mean, "scale": gate.scale, "labels": labels, "gain": gain,
                    "train_prob": gate.probability(x), "rows": idx}

        arrays = load_or_build_arrays("gates", self._cache_key(ctx), build, recipe=ctx.recipe,
                                      required=("weights", "mean", "scale", "labels", "gain", "train_prob", "rows"))
        after = self.inner.info()
        gate = Gate(arrays["weights"], arrays["mean"], arrays["scale"])
        labels, prob = arrays["labels"], arrays["train_prob"]
        self._record["gate"] = {
            "features": f"query-text embedding by {self.params.features} (standardised)",
            "model": "logistic regression, L-BFGS", "l2": self.params.l2, "threshold": self.params.threshold,
            "judge": self.params.judge, "label": f"expansion raises Recall@{self.params.recall_k}",
            "train_queries": int(len(labels)), "share_helped": round(float(labels.mean()), 4),
            "mean_recall_gain": round(float(np.mean(arrays["gain"])), 4),
            "train_accuracy": round(float(np.mean((prob >= self.params.threshold) == (labels == 1))), 4),
            "llm_requests": int(after.get("requests", 0)) - int(before.get("requests", 0)),
        }
        return gate

    # -- applying -----------------------------------------------------------------------------------------------
    def expand(self, texts: list[str], split: Split, ctx: RunContext) -> list[list[str]]:
        if self.gate is None:
            self.gate = self.fit(ctx)
        prob = self.gate.probability(self._features(texts, ctx))
        chosen = np.flatnonzero(prob >= self.params.threshold)
        out: list[list[str]] = [[t] for t in texts]
        before = int(self.inner.info().get("requests", 0))
        if len(chosen):
            sub = split.subset(chosen, split.name)
            for i, group in zip(chosen.tolist(), self.inner.expand([texts[i] for i in chosen], sub, ctx),
                                strict=True):
                out[i] = group
        llm = self.wrapped in LLM_EXPANDERS
        self._record.setdefault("by_split", {})[split.name] = {
            "queries": len(texts), "expanded": int(len(chosen)),
            "share_expanded": round(len(chosen) / max(len(texts), 1), 4),
            "llm_calls": int(len(chosen)) if llm else 0,
            "llm_calls_saved": int(len(texts) - len(chosen)) if llm else 0,
            "llm_requests": int(self.inner.info().get("requests", 0)) - before,  # 0 when the replies were cached
            "expanded_queries": chosen.astype(int).tolist(),
        }
        return out

    def info(self) -> dict[str, Any]:
        inner = {k: v for k, v in self.inner.info().items() if k != "by_split"}
        return {**self._record, "inner": inner}


def _register(wrapped: str) -> None:
    meta, _ = EXPANDERS.get(wrapped)
    bases = (GateParams, meta.params) if meta.params is not None else (GateParams,)  # fields: wrapped first

    def post_init(self: Any) -> None:
        for base in bases:
            init = getattr(base, "__post_init__", None)
            if init is not None:
                init(self)

    params = dataclasses.make_dataclass(f"Adaptive{wrapped.capitalize()}Params", [], bases=bases, frozen=True,
                                        namespace={"__post_init__": post_init,
                                                   "__doc__": f"{wrapped}'s parameters plus the gate's (GateParams)"})
    cls = type(f"Adaptive{wrapped.capitalize()}Expander", (AdaptiveExpander,), {"wrapped": wrapped})
    register_expander(f"adaptive:{wrapped}", params=params,
                      description=f"adaptive {wrapped}: expand only the queries a gate (logistic regression on the "
                                  "query embedding, fitted on the train split) predicts expansion helps")(cls)


def _register_all() -> None:
    import importlib

    for wrapped in WRAPPED:  # the wrapped stages register on import (this module may load before them)
        importlib.import_module(f"bench.systems.expand.{wrapped}")
        _register(wrapped)


_register_all()
