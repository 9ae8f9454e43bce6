"""Metric names, defined once and parsed from strings like `MRECALL@10` or `Recall@100` (ir_measures style).

How each metric is computed lives in its own file: `mrecall.py`, `recall.py`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from bench.errors import BenchError
from bench.metrics.mrecall import mrecall_at_k
from bench.metrics.recall import recall_at_k
from bench.task import Targets

MetricFn = Callable[[np.ndarray, Targets, int], np.ndarray]

MEASURES: dict[str, MetricFn] = {"MRECALL": mrecall_at_k, "Recall": recall_at_k}

_NAME = re.compile(r"^(?P<measure>[A-Za-z]+)@(?P<k>-?\d+)$")


@dataclass(frozen=True, order=True)
class Metric:
    """A measure at a cutoff, e.g. Metric('MRECALL', 10) printed as MRECALL@10."""

    measure: str
    k: int

    def __str__(self) -> str:
        return f"{self.measure}@{self.k}"

    def compute(self, ranking: np.ndarray, targets: Targets) -> np.ndarray:
        """Per-query values (the bootstrap needs them, not only the mean)."""
        return MEASURES[self.measure](ranking, targets, self.k)


def parse_metric(name: str) -> Metric:
    """`MRECALL@10` → Metric('MRECALL', 10); measure names are case-insensitive."""
    m = _NAME.match(name.strip())
    if not m:
        raise BenchError(f"metric {name!r} is not of the form NAME@k, e.g. MRECALL@10")
    lookup = {key.lower(): key for key in MEASURES}
    measure = lookup.get(m["measure"].lower())
    if measure is None:
        raise BenchError(f"unknown measure {m['measure']!r} in {name!r}; known: {', '.join(MEASURES)}")
    k = int(m["k"])
    if k <= 0:
        raise BenchError(f"k must be > 0 in {name!r}")
    return Metric(measure, k)


def parse_ks(text: str | Iterable[int]) -> tuple[int, ...]:
    """`"10,100"` → (10, 100); every k must be a positive integer."""
    items = text.split(",") if isinstance(text, str) else list(text)
    ks: list[int] = []
    for item in items:
        try:
            k = int(item)
        except (TypeError, ValueError):
            raise BenchError(f"k must be a positive integer, got {item!r}") from None
        if k <= 0:
            raise BenchError(f"k must be > 0, got {k}")
        ks.append(k)
    if not ks:
        raise BenchError("give at least one k")
    return tuple(sorted(set(ks)))


def default_metrics(ks: Iterable[int]) -> list[Metric]:
    """MRECALL@k and Recall@k for every k: what a run reports unless told otherwise."""
    return [Metric(measure, k) for measure in MEASURES for k in sorted(ks)]


def check_cutoffs(metrics: Iterable[Metric], corpus_size: int, task: str = "the task") -> None:
    """Refuse a cutoff larger than the corpus: its top-k would hold every document and every recall would be a
    trivial 1.0 (e.g. MRECALL@5000 on a 3,250-vector corpus). Refused rather than clamped, so no stored figure is
    ever computed at a cutoff other than the one its name says."""
    too_big = sorted({m.k for m in metrics if m.k > corpus_size})
    if too_big:
        raise BenchError(
            f"k={','.join(map(str, too_big))} is larger than the corpus of {task} ({corpus_size} documents): every "
            f"document would be retrieved and every recall would be 1.0; use k ≤ {corpus_size}"
        )

