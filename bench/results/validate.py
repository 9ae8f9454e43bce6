"""Field checks for records read back from disk (results files): a wrong type, a missing field, a non-finite number or
an impossible one — a metric value outside its measure's range (MRECALL@k and Recall@k in [0, 1]), a fraction where
the measure counts (MRECALL@k is 0 or 1 per query), a negative count — is one BenchError naming the file and the
field, not a TypeError three calls later or a table that prints 500.00."""

from __future__ import annotations

import math
from typing import Any

from bench.errors import BenchError

_STR = ("run_id", "task", "retriever", "system", "created", "split", "config_hash")
_INT = ("schema_version", "seed", "corpus_size")
_DICT = ("task_params", "retriever_params", "retriever_info", "task_info", "data_hash", "versions", "timings", "extra",
         "unknown")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def check_run_record(data: dict[str, Any], source: str) -> None:
    """Raise one BenchError for the first field of a run record that has the wrong type or a non-finite value."""
    def bad(field: str, want: str) -> BenchError:
        got = data[field]
        shown = repr(got) if len(repr(got)) <= 40 else repr(got)[:37] + "..."
        return BenchError(f"{source}: field {field!r} must be {want}, got {shown}")

    for f in _STR:
        if f in data and not isinstance(data[f], str):
            raise bad(f, "a string")
    for f in _INT:
        if f in data and not _is_int(data[f]):
            raise bad(f, "an integer")
    for f in _DICT:
        if f in data and not isinstance(data[f], dict):
            raise bad(f, "a JSON object")
    if "ks" in data and not (isinstance(data["ks"], list) and all(_is_int(k) and k > 0 for k in data["ks"])):
        raise bad("ks", "a list of positive integers")
    if "query_ids" in data and not (isinstance(data["query_ids"], list)
                                    and all(isinstance(q, str) for q in data["query_ids"])):
        raise bad("query_ids", "a list of strings")
    n = len(data["query_ids"]) if isinstance(data.get("query_ids"), list) else None
    if "per_query" in data:
        pq = data["per_query"]
        if not isinstance(pq, dict):
            raise bad("per_query", "a JSON object of metric: list of numbers")
        for metric, values in pq.items():
            if not isinstance(values, list) or not all(_is_number(v) for v in values):
                raise BenchError(f"{source}: field 'per_query.{metric}' must be a list of finite numbers")
            if n is not None and len(values) != n:
                raise BenchError(f"{source}: field 'per_query.{metric}' has {len(values)} values for {n} query ids")
    if "summary" in data:
        summary = data["summary"]
        if not isinstance(summary, dict):
            raise bad("summary", "a JSON object of metric: number")
        for metric, value in summary.items():
            if not _is_number(value):
                raise BenchError(f"{source}: field 'summary.{metric}' must be a finite number, got {value!r}")
    for f in ("seed", "corpus_size"):  # counts and seeds are whole numbers ≥ 0
        if f in data and data[f] < 0:
            raise bad(f, "≥ 0")
    _check_ranges(data, source)


def _check_ranges(data: dict[str, Any], source: str) -> None:
    """Every per-query value and mean of a registered measure inside the measure's range, per-query values whole
    where the measure counts (`Metric.bounds`, `Metric.whole`); a measure this installation does not know is not
    judged."""
    from bench.metrics import parse_metric

    qids = data.get("query_ids") or []
    for part in ("per_query", "summary"):
        for name, values in (data.get(part) or {}).items():
            try:
                metric = parse_metric(name)
                lo, hi = metric.bounds
            except BenchError:
                continue
            for i, v in enumerate(values if part == "per_query" else [values]):
                which = f" (query {qids[i]!r})" if part == "per_query" and i < len(qids) else ""
                if not lo <= v <= hi:
                    raise BenchError(f"{source}: field '{part}.{name}' holds {v!r}{which}, outside the measure's range "
                                     f"[{lo:g}, {hi:g}]")
                if part == "per_query" and metric.whole and v != int(v):
                    raise BenchError(f"{source}: field '{part}.{name}' holds {v!r}{which}; {metric.measure} is a "
                                     "count, its per-query values are whole numbers")
