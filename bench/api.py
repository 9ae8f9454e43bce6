"""The Python API, for notebooks and scripts — the same functions the command line calls:

    import bench
    result = bench.evaluate("minilm+mmr", task="limit-small")       # a system name, as `bench run --retriever`
    result = bench.evaluate(my_encoder, task="limit-small", name="my-encoder-v1")   # any object with encode(texts)
    result.summary                                                    # {"MRECALL@2": …, "Recall@10": …}
    runs = bench.load_runs("limit-small")                             # DataFrame: one row per query and system
    table = bench.compare("limit-small")                              # the table `bench compare` prints

`evaluate` stores its run as `bench run` does (results/<task>/<system>/<run-id>.json and .trec), through the one
orchestrator (bench/evaluate.py: check once, run, record, store), so `bench compare` and `bench report` see it beside
the command line's runs. An encoder object is wrapped by bench/systems/object_encoder.py (its identity, and so its
cache of corpus embeddings, is the `name` you give, else a content hash of the object: see there).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from bench.errors import BenchError
from bench.params import Pairs, items_of
from bench.results.record import RunResult
from bench.results.report import Comparison

if TYPE_CHECKING:
    import pandas as pd

    from bench.systems.session import Session


def _pandas() -> Any:
    try:
        import pandas
    except ImportError:
        raise BenchError("tables as DataFrames need pandas: pip install 'multitarget-bench[api]'") from None
    return pandas


# ------------------------------------------------------------------------------------------------------- evaluate
@dataclass
class Evaluation:
    """One evaluated system on one task: its stored record (`record`, as `bench run` writes it) and its file."""

    record: RunResult
    path: Path

    @property
    def system(self) -> str:
        return self.record.system

    @property
    def summary(self) -> dict[str, float]:
        """Mean of every metric over the queries, e.g. {"MRECALL@10": 0.42, …}."""
        return dict(self.record.summary)

    def values(self, metric: str) -> np.ndarray:
        """The per-query values of one metric (`MRECALL@10`), in query order."""
        return self.record.values(metric)

    def per_query(self) -> pd.DataFrame:
        """One row per query (index: query id), one column per metric."""
        pd = _pandas()
        frame = pd.DataFrame(self.record.per_query, index=pd.Index(self.record.query_ids, name="query_id"))
        return frame

    def __repr__(self) -> str:
        means = ", ".join(f"{k} {v:.4f}" for k, v in self.record.summary.items())
        return f"Evaluation({self.system} on {self.record.task}: {means}; {self.path})"


def evaluate(model_or_system: Any, task: str, *, task_params: Pairs = (), ks: Sequence[int] | None = None,
             metrics: Sequence[str] = (), params: Pairs = (), seed: int = 0, split: str = "test",
             results_dir: str | Path = "results", retrain: bool = False, device: str = "auto",
             session: Session | None = None, **more_params: Any) -> Evaluation:
    """Evaluate a system on a task and store its run as `bench run` does; returns the record and its path.

    `model_or_system` is a system name (`"minilm"`, `"minilm+mmr"`, `"amer@rrf(k=60)"`: stage parameters go in
    `params` or as keywords, routed as `-r` pairs are, e.g. `steps=100` or `**{"mmr.λ": 0.75}`), or an encoder object
    with `encode(texts) -> array` (keywords: `name`, `query_prompt`, `document_prompt`, `shard_size`). `ks` default
    to the task's cutoffs; `metrics` adds measures such as "FirstRR@10"."""
    from bench.data.task import build_task
    from bench.evaluate import check
    from bench.evaluate import evaluate as run_one
    from bench.metrics import default_metrics, parse_metric
    from bench.systems.build import build_systems
    from bench.systems.object_encoder import object_system
    from bench.systems.session import Session

    pairs = [*items_of(params, "params"), *more_params.items()]
    if isinstance(model_or_system, str):
        (system,) = build_systems([model_or_system], pairs)
    else:
        system = object_system(model_or_system, pairs)
    task_obj = build_task(task, task_params)
    chosen = list(ks) if ks else list(task_obj.default_ks)
    metric_objs = sorted(set(default_metrics(chosen)) | {parse_metric(m) for m in metrics})
    session = session or Session(device=device)
    check(task_obj, [system], metric_objs, session, results_dir)
    record, path = run_one(task_obj, system, metric_objs, session, seed=seed, split=split, retrain=retrain,
                           results_dir=results_dir)
    return Evaluation(record, path)


# ------------------------------------------------------------------------------------------------------ load_runs
def _stage_columns(stages: list[dict[str, Any]]) -> dict[str, Any]:
    """Stage names and every parameter, as columns: `retriever`, `retriever.batch_size`, `reranker`, `reranker.lam`;
    a second re-ranker is `reranker2`."""
    out: dict[str, Any] = {"expander": None, "fuser": None, "reranker": None}
    seen: dict[str, int] = {}
    for stage in stages:
        kind = str(stage.get("kind", "stage"))
        seen[kind] = seen.get(kind, 0) + 1
        col = kind if seen[kind] == 1 else f"{kind}{seen[kind]}"
        out[col] = stage.get("name")
        for key, value in (stage.get("params") or {}).items():
            out[f"{col}.{key}"] = tuple(value) if isinstance(value, list) else value
    return out


def load_runs(task: str, results_dir: str | Path = "results", *, runs: Sequence[str | Path] | None = None,
              systems: Sequence[str] | None = None) -> pd.DataFrame:
    """Per-query values of the stored runs of a task — the newest run of each system (as `bench compare` picks
    them), or the given run files — as a DataFrame with one row per query and system: `task`, `split`, `system`,
    `run_id`, `query_id`, the stage columns (`retriever`, `expander`, `fuser`, `reranker` and `<stage>.<param>` for
    every parameter), `n_answers` and `target_cos_sim` (the query's mean pairwise target similarity) where recorded,
    and one column per metric."""
    from bench.metrics import diversity as div
    from bench.results.runs import collect_runs

    pd = _pandas()
    found = collect_runs(task, Path(results_dir), [Path(p) for p in runs] if runs else None)
    if systems is not None:
        missing = [s for s in systems if s not in found]
        if missing:
            raise BenchError(f"no run of {', '.join(missing)} on task {task!r}; runs: {', '.join(found)}")
        found = {s: found[s] for s in systems}
    frames = []
    for label, (rec, _) in found.items():
        n = len(rec.query_ids)
        cols: dict[str, Any] = {"task": rec.task, "split": rec.split, "system": label, "run_id": rec.run_id,
                                "query_id": rec.query_ids, **_stage_columns(rec.stages)}
        answers = rec.extra.get("answers_per_query")
        if answers and len(answers) == n:
            cols["n_answers"] = answers
        td = rec.extra.get(div.RECORD_KEY) or {}
        cos = td.get("mean_pairwise_cos_sim")
        if cos and len(cos) == n:
            cols["target_cos_sim"] = [np.nan if v is None else v for v in cos]
        frame = pd.DataFrame({k: v if isinstance(v, list) else [v] * n for k, v in cols.items()})
        for metric, values in rec.per_query.items():
            frame[metric] = values
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


# -------------------------------------------------------------------------------------------------------- compare
def comparison(task: str | None = None, results_dir: str | Path = "results", *,
               runs: Sequence[str | Path] | None = None, baseline: str | None = None, ks: Sequence[int] | None = None,
               measure: str = "MRECALL", ci: bool = False, ci_method: str = "bca", bins: bool = False,
               by: str = "cosine", resamples: int = 10_000, seed: int = 0, low_sim: str = "paper") -> Comparison:
    """The comparison `bench compare` prints, as its data model (bench/results/report.py `Comparison`); `low_sim`
    chooses the low-similarity subset's rule as `bench compare --low-sim` (docs/fidelity.md)."""
    from bench.metrics import measure_name
    from bench.results.report import build_comparison
    from bench.results.runs import collect_runs

    found = collect_runs(task, Path(results_dir), [Path(p) for p in runs] if runs else None)
    return build_comparison({label: rec for label, (rec, _) in found.items()}, baseline=baseline,
                            measure=measure_name(measure), ks=list(ks) if ks else None, bins=bins, bin_by=by,
                            n_resamples=resamples, seed=seed, ci_method=ci_method, show_ci=ci, low_sim=low_sim)


@dataclass
class ComparisonTable:
    """`bench.compare`'s answer: the comparison (`comparison`), as the command line's table (`table()`), as one row
    per system × metric × subset with every number (`to_frame()`, the rows of `bench compare --format json`), and as
    Markdown (`str()`) or HTML in a notebook."""

    comparison: Comparison

    def table(self, which: int = 0) -> pd.DataFrame:
        """The printed table number `which` (0: whole set and low-similarity subset; then bins, cost), as text."""
        from bench.results.report import tables

        title, header, rows = tables(self.comparison)[which]
        frame = _pandas().DataFrame(rows, columns=header).set_index(header[0])
        frame.attrs["title"] = title
        return frame

    def to_frame(self) -> pd.DataFrame:
        from bench.results.report import records

        return _pandas().DataFrame(records(self.comparison))

    def to_json(self) -> str:
        from bench.results.report import to_json

        return to_json(self.comparison)

    def __str__(self) -> str:
        from bench.results.report import to_markdown

        return to_markdown(self.comparison)

    def _repr_html_(self) -> str:
        from html import escape

        from bench.results.report import caption, tables

        parts = []
        for i, (title, _, _) in enumerate(tables(self.comparison)):
            parts.append(f"<p><b>{escape(self.comparison.task)}: {escape(title)}</b></p>"
                         + self.table(i).to_html())
        return "".join(parts) + "".join(f"<br><small>{escape(line)}</small>" for line in caption(self.comparison))


def compare(task: str | None = None, results_dir: str | Path = "results", **options: Any) -> ComparisonTable:
    """Compare the stored runs of a task as `bench compare` does (options: runs, baseline, ks, measure, ci,
    ci_method, bins, by, resamples, seed, low_sim)."""
    return ComparisonTable(comparison(task, results_dir, **options))
