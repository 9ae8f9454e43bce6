"""Metrics as parameterised names, defined once and parsed from strings (ir_measures style): a *measure* is a
registered plugin (`MRECALL`, `Recall`: one file each, `@register_metric` in bench.registry), a *metric* is a measure
at a cutoff, `MRECALL@10`, `Recall@100`. How each measure is computed lives in its own file (`mrecall.py`,
`recall.py`); this module parses and prints the names, checks cutoffs, and computes per-query values.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from bench.data.task import Targets
from bench.errors import BenchError
from bench.registry import METRICS, PluginMeta

DEFAULT_MEASURES = ("MRECALL", "Recall")  # what a run reports at every cutoff unless told otherwise

_NAME = re.compile(r"^(?P<measure>[A-Za-z][A-Za-z0-9_]*)@(?P<k>-?\d+)$")


@dataclass(frozen=True, order=True)
class Metric:
    """A measure at a cutoff, e.g. Metric('MRECALL', 10), printed (and stored) as MRECALL@10."""

    measure: str
    k: int

    def __str__(self) -> str:
        return f"{self.measure}@{self.k}"

    @property
    def meta(self) -> PluginMeta:
        return METRICS.get(self.measure)[0]

    @property
    def bounds(self) -> tuple[float, float]:
        """The range every per-query value lies in, as the measure declares it."""
        return float(self.meta.extra.get("lower", 0.0)), float(self.meta.extra.get("upper", 1.0))

    @property
    def whole(self) -> bool:
        """Whether the measure counts, so every per-query value is a whole number (MRECALL@k: 0 or 1)."""
        return bool(self.meta.extra.get("whole", False))

    def compute(self, ranking: np.ndarray, targets: Targets) -> np.ndarray:
        """Per-query values (the bootstrap needs them, not only the mean)."""
        return np.asarray(self.meta.factory(ranking, targets, self.k), dtype=np.float64)


def measure_name(name: str) -> str:
    """The registered spelling of a measure name, case-insensitive: `mrecall` → `MRECALL`; one error line else."""
    return METRICS.canonical(name.strip())


def parse_metric(name: str) -> Metric:
    """`MRECALL@10` → Metric('MRECALL', 10); measure names are case-insensitive."""
    m = _NAME.match(name.strip())
    if not m:
        raise BenchError(f"metric {name!r} is not of the form NAME@k, e.g. MRECALL@10")
    measure = measure_name(m["measure"])
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
    return [Metric(measure, k) for measure in DEFAULT_MEASURES for k in sorted(ks)]


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
