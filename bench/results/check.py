"""The regression gate: expected scores in a YAML file, measured by running (or reading) the runs they name.

File format (bench/results/expected/*.yaml ships with the package):

    description: what this gate covers
    defaults:                    # optional; merged into every entry (an entry's own keys win)
      task_params: {d: 32}
      seed: 0
    entries:
      - task: synthetic-linear-single
        task_params: {n_test: 100}
        retriever: oracle
        retriever_params: {}
        metric: MRECALL@10
        expected: 1.0            # same scale as a run's summary: a mean in [0, 1], not ×100
        tolerance: 0.0           # absolute; |measured − expected| ≤ tolerance passes

Entries that share (task, task params, retriever, retriever params, seed, split) share one run.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from rich.markup import escape
from rich.table import Table

from bench.errors import BenchError
from bench.metrics import parse_metric
from bench.params import params_dict
from bench.results.record import RunResult, find_runs, valid_runs, warn_skipped
from bench.storage.atomic import atomic_open
from bench.storage.cache import stable_hash

EXPECTED_DIR = Path(__file__).resolve().parent / "expected"
DEFAULT_FILE = "synthetic-smoke"
_FIELDS = {"task", "task_params", "retriever", "retriever_params", "metric", "expected", "tolerance", "seed", "split"}
_EPS = 1e-12  # float slack on the tolerance comparison


@dataclass
class Expectation:
    """One expected score: a metric of one retriever on one task configuration, with its tolerance."""

    task: str
    retriever: str
    metric: str
    expected: float
    tolerance: float
    task_params: dict[str, Any] = field(default_factory=dict)
    retriever_params: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    split: str = "test"
    where: str = ""  # file:line, for messages

    def run_key(self) -> str:
        return stable_hash([self.task, self.task_params, self.retriever, self.retriever_params, self.seed, self.split])


@dataclass
class Outcome:
    """An expectation and what was measured. status: ok, dropped, rose, rose (allowed), missing."""

    exp: Expectation
    measured: float | None
    status: str
    run_id: str = ""
    detail: str = ""

    @property
    def diff(self) -> float | None:
        return None if self.measured is None else self.measured - self.exp.expected

    @property
    def failed(self) -> bool:
        return self.status in ("dropped", "rose", "missing")


class _LineLoader(yaml.SafeLoader):
    """A safe loader that records the line of every mapping under '__line__', for error messages."""


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> dict[str, Any]:
    mapping = loader.construct_mapping(node, deep=True)
    mapping["__line__"] = node.start_mark.line + 1
    return mapping


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def resolve_file(name: str | Path | None) -> Path:
    """A path to an expected-scores file, or the name of one shipped in bench/results/expected/ (default:
    synthetic-smoke)."""
    if name is None:
        name = DEFAULT_FILE
    p = Path(name)
    if p.exists():
        return p
    shipped = EXPECTED_DIR / (p.name if p.suffix in (".yaml", ".yml") else f"{p.name}.yaml")
    if shipped.exists():
        return shipped
    names = sorted(f.stem for f in EXPECTED_DIR.glob("*.yaml"))
    raise BenchError(f"{name}: no such expected-scores file (shipped ones: {', '.join(names) or 'none'})")


def _clean(d: dict[str, Any]) -> dict[str, Any]:
    return {k: _clean(v) if isinstance(v, dict) else v for k, v in d.items() if k != "__line__"}


def load_expectations(path: str | Path) -> list[Expectation]:
    """Parse and validate an expected-scores file; every problem is one BenchError naming file, line and field."""
    p = Path(path)
    try:
        raw_bytes = p.read_bytes()
        doc = yaml.load(raw_bytes.decode("utf-8"), Loader=_LineLoader)  # noqa: S506 (a SafeLoader subclass)
    except FileNotFoundError:
        raise BenchError(f"{p}: no such file") from None
    except IsADirectoryError:
        raise BenchError(f"{p}: is a folder, not an expected-scores file") from None
    except OSError as exc:
        raise BenchError(f"{p}: cannot be read ({exc.strerror or exc})") from None
    except UnicodeDecodeError as exc:
        line_no = raw_bytes[: exc.start].count(b"\n") + 1
        raise BenchError(f"{p}:{line_no}: not UTF-8 text (byte {exc.start}: {exc.reason})") from None
    except RecursionError:
        raise BenchError(f"{p}: nested too deeply to be an expected-scores file") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise BenchError(f"{p}{line}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
    if isinstance(doc, list):
        doc = {"entries": doc}
    if not isinstance(doc, dict) or not isinstance(doc.get("entries"), list) or not doc["entries"]:
        raise BenchError(f"{p}: expected a mapping with a non-empty 'entries' list")
    defaults = doc.get("defaults") or {}
    if not isinstance(defaults, dict):
        raise BenchError(f"{p}: 'defaults' must be a mapping")
    unknown = set(defaults) - _FIELDS - {"__line__"}
    if unknown:
        raise BenchError(f"{p}:{defaults.get('__line__', '?')}: unknown field(s) in defaults: "
                         f"{', '.join(sorted(map(str, unknown)))}")
    out = []
    for i, raw in enumerate(doc["entries"], start=1):
        if not isinstance(raw, dict):
            raise BenchError(f"{p}: entry {i} must be a mapping, got {type(raw).__name__}")
        where = f"{p}:{raw.get('__line__', '?')} (entry {i})"
        entry = {**_clean(defaults), **_clean(raw)}
        for key in ("task_params", "retriever_params"):  # merge parameter maps instead of replacing them
            if isinstance(defaults.get(key), dict) and isinstance(raw.get(key), dict):
                entry[key] = {**_clean(defaults[key]), **_clean(raw[key])}
        out.append(_expectation(entry, where))
    return out


def _expectation(entry: dict[str, Any], where: str) -> Expectation:
    unknown = set(entry) - _FIELDS
    if unknown:
        raise BenchError(f"{where}: unknown field(s) {', '.join(sorted(map(str, unknown)))}; "
                         f"known: {', '.join(sorted(_FIELDS))}")
    for key in ("task", "retriever", "metric", "expected", "tolerance"):
        if key not in entry:
            raise BenchError(f"{where}: missing field {key!r}")
    for key in ("task", "retriever", "metric", "split"):
        if key in entry and not isinstance(entry[key], str):
            raise BenchError(f"{where}: field {key!r} must be a string, got {entry[key]!r}")
    for key in ("expected", "tolerance"):
        v = entry[key]
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            raise BenchError(f"{where}: field {key!r} must be a number, got {v!r}")
    if entry["tolerance"] < 0:
        raise BenchError(f"{where}: field 'tolerance' must be ≥ 0, got {entry['tolerance']}")
    for key in ("task_params", "retriever_params"):
        if not isinstance(entry.get(key, {}) or {}, dict):
            raise BenchError(f"{where}: field {key!r} must be a mapping of parameter: value")
    seed = entry.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise BenchError(f"{where}: field 'seed' must be an integer, got {seed!r}")
    try:
        metric = str(parse_metric(entry["metric"]))
    except BenchError as exc:
        raise BenchError(f"{where}: field 'metric': {exc}") from None
    return Expectation(task=entry["task"], retriever=entry["retriever"], metric=metric,
                       expected=float(entry["expected"]), tolerance=float(entry["tolerance"]),
                       task_params=dict(entry.get("task_params") or {}),
                       retriever_params=dict(entry.get("retriever_params") or {}), seed=seed,
                       split=entry.get("split", "test"), where=where)


def judge(exp: Expectation, measured: float, run_id: str = "", one_sided: bool = False) -> Outcome:
    """ok when |measured − expected| ≤ tolerance; else dropped / rose (rises pass when one_sided)."""
    diff = measured - exp.expected
    if abs(diff) <= exp.tolerance + _EPS:
        return Outcome(exp, measured, "ok", run_id)
    if diff < 0:
        return Outcome(exp, measured, "dropped", run_id)
    return Outcome(exp, measured, "rose (allowed)" if one_sided else "rose", run_id)


def _full_params(exp: Expectation) -> tuple[dict[str, Any], dict[str, Any], str]:
    """The entry's parameters with every default filled in, as a run records them, and its canonical system name
    (an entry's `retriever` may be a retriever or a whole system, e.g. `minilm+mmr` or `amer[sampling=teacher]`)."""
    from bench.data.task import build_task
    from bench.systems.build import build_system

    try:
        task = build_task(exp.task, exp.task_params)
        system = build_system(exp.retriever, exp.retriever_params)
    except BenchError as exc:
        raise BenchError(f"{exp.where}: {exc}") from None
    return params_dict(task.params), params_dict(system.retriever.params), system.name


def _matches(run: RunResult, exp: Expectation, task_params: dict[str, Any], retr_params: dict[str, Any],
             system: str) -> bool:
    return (run.task == exp.task and run.system == system and run.seed == exp.seed
            and run.split == exp.split and _jsonable(run.task_params) == _jsonable(task_params)
            and _jsonable(run.retriever_params) == _jsonable(retr_params))


def _jsonable(d: dict[str, Any]) -> str:
    return stable_hash(d, length=64)


def measure(expectations: Sequence[Expectation], read_dir: str | Path | None = None,
            results_dir: str | Path | None = None, one_sided: bool = False,
            on_run: Callable[[Expectation], None] | None = None) -> list[Outcome]:
    """Measure every expectation: read the newest matching run under `read_dir`, or run each distinct configuration
    once (writing to `results_dir`, or to a temporary folder that is removed afterwards)."""
    groups: dict[str, list[Expectation]] = {}
    for exp in expectations:
        groups.setdefault(exp.run_key(), []).append(exp)
    outcomes: dict[int, Outcome] = {}
    if read_dir is not None:
        for group in groups.values():
            first = group[0]
            tp, rp, system = _full_params(first)
            paths = reversed(find_runs(read_dir, first.task, system))  # newest first; broken files: a warning each
            runs = [r for r, _ in valid_runs(paths, warn_skipped) if _matches(r, first, tp, rp, system)]
            for exp in group:
                found = next((r for r in runs if exp.metric in r.summary), None)
                if found is None:
                    outcomes[id(exp)] = Outcome(exp, None, "missing", detail=f"no run with {exp.metric} in {read_dir}")
                else:
                    outcomes[id(exp)] = judge(exp, float(found.summary[exp.metric]), found.run_id, one_sided)
    else:
        from bench.evaluate import evaluate_named
        from bench.systems.session import Session

        session = Session()
        with tempfile.TemporaryDirectory(prefix="bench-check-") as tmp:
            target = results_dir if results_dir is not None else tmp
            for group in groups.values():
                first = group[0]
                if on_run is not None:
                    on_run(first)
                metrics = sorted({parse_metric(e.metric) for e in group})
                try:
                    result, _ = evaluate_named(first.task, first.retriever, sorted({m.k for m in metrics}),
                                               first.task_params, first.retriever_params, seed=first.seed,
                                               split=first.split, results_dir=target, session=session,
                                               metrics=metrics)
                except BenchError as exc:
                    raise BenchError(f"{first.where}: {exc}") from None
                for exp in group:
                    outcomes[id(exp)] = judge(exp, float(result.summary[exp.metric]), result.run_id, one_sided)
    return [outcomes[id(e)] for e in expectations]


def _params_text(params: dict[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in params.items())


def outcome_table(outcomes: Sequence[Outcome], title: str) -> Table:
    """A rich table: every entry, what was expected and measured, by how much it moved, and its status."""
    n_bad = sum(o.failed for o in outcomes)
    table = Table(title=f"{title}: {len(outcomes) - n_bad} ok, {n_bad} moved" if n_bad else f"{title}: all "
                  f"{len(outcomes)} ok", caption="values are means in [0, 1]; Δ = measured − expected",
                  caption_justify="left")
    for col in ("task", "retriever", "metric", "expected", "measured", "Δ", "tolerance", "status"):
        table.add_column(col, justify="right" if col in ("expected", "measured", "Δ", "tolerance") else "left",
                         overflow="fold")
    for o in outcomes:
        e = o.exp
        style = "red" if o.failed else ("yellow" if o.status != "ok" else "green")
        # escape: `[…]` in a system name (amer[steps=50]) or a path is text, not markup
        task = escape(e.task) + (f" [dim]{escape(_params_text(e.task_params))}[/]" if e.task_params else "")
        retr = escape(e.retriever) + (f" [dim]{escape(_params_text(e.retriever_params))}[/]"
                                      if e.retriever_params else "")
        table.add_row(task, retr, escape(e.metric), f"{e.expected:.4f}",
                      "–" if o.measured is None else f"{o.measured:.4f}",
                      "–" if o.diff is None else f"{round(o.diff, 6) + 0.0:+.4f}", f"{e.tolerance:.4f}",
                      f"[{style}]{o.status}[/]" + (f" ({escape(o.detail)})" if o.detail else ""))
    return table


def write_measured(outcomes: Sequence[Outcome], path: str | Path) -> None:
    """Write an expected-scores file holding the measured values (same tolerances): to refresh a gate deliberately."""
    entries = []
    for o in outcomes:
        e = o.exp
        entries.append({"task": e.task, "task_params": e.task_params, "retriever": e.retriever,
                        "retriever_params": e.retriever_params, "seed": e.seed, "split": e.split,
                        "metric": e.metric, "expected": round(o.measured, 6) if o.measured is not None else e.expected,
                        "tolerance": e.tolerance})
    with atomic_open(path) as fh:
        yaml.safe_dump({"entries": entries}, fh, sort_keys=False)
