"""Run records, their atomic store under results/<task>/<system>/<run-id>.json, and TREC run export.

A record carries `schema_version`; the loader fills fields that older files lack with their defaults and keeps
fields it does not know under `unknown`, so files keep loading as the format grows. A record of schema 1 (before
systems of stages) has no `system`: it loads as the system named by its retriever, which is what it was.
"""

from __future__ import annotations

import dataclasses
import glob
import json
import re
import time
import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from bench.errors import BenchError
from bench.params import params_dict
from bench.registry import TASKS
from bench.results.validate import check_run_record
from bench.storage.atomic import atomic_open
from bench.storage.cache import stable_hash
from bench.storage.versions import package_versions

if TYPE_CHECKING:  # the types of `of_run`'s inputs; loading a stored record needs none of them
    from bench.data.task import Task, TaskData
    from bench.index import IndexSpec
    from bench.metrics import Metric
    from bench.systems.build import System
    from bench.systems.pipeline import Outcome

SCHEMA_VERSION = 2  # 2: `system` (canonical name of the pipeline of stages) and `stages`


def run_id_for(config_hash: str, now: float) -> str:
    """A run id: the UTC time to the millisecond, then 8 hex digits of the config hash (ids sort by time)."""
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime(now)) + f"{int(now * 1000) % 1000:03d}Z-{config_hash[:8]}"


@dataclass
class RunResult:
    """One system (a retriever and its stages) on one task: config, provenance, per-query metric values, summary.

    `system` is the canonical system name (bench/systems/names.py), e.g. `minilm+mmr` or `amer[sampling=teacher]`;
    for a plain retriever it equals `retriever`. `stages` lists every stage with all its parameters."""

    run_id: str
    task: str
    retriever: str
    ks: list[int]
    query_ids: list[str]
    per_query: dict[str, list[float]]
    summary: dict[str, float]
    schema_version: int = SCHEMA_VERSION
    created: str = ""
    split: str = "test"
    task_params: dict[str, Any] = field(default_factory=dict)
    retriever_params: dict[str, Any] = field(default_factory=dict)
    retriever_info: dict[str, Any] = field(default_factory=dict)
    task_info: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    config_hash: str = ""
    corpus_size: int = 0
    data_hash: dict[str, str] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    system: str = ""
    stages: list[dict[str, Any]] = field(default_factory=list)
    unknown: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.system:  # schema 1 files: the system was the retriever alone
            self.system = self.retriever

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "<dict>") -> RunResult:
        names = {f.name for f in dataclasses.fields(cls)}
        required = {f.name for f in dataclasses.fields(cls)
                    if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}
        missing = sorted(required - data.keys())
        if missing:
            raise BenchError(f"{source}: not a run record, missing field(s) {', '.join(missing)}")
        known = {k: v for k, v in data.items() if k in names and k != "unknown"}
        extra_keys = {k: v for k, v in data.items() if k not in names}
        rec = cls(**known)
        rec.unknown = {**data.get("unknown", {}), **extra_keys}
        if rec.schema_version > SCHEMA_VERSION:
            rec.unknown.setdefault("_note", f"written by a newer schema ({rec.schema_version})")
        return rec

    @classmethod
    def of_run(cls, task: Task, data: TaskData, system: System, outcome: Outcome, metrics: Sequence[Metric], *,
               seed: int, split: str, index: IndexSpec, timings: dict[str, float]) -> RunResult:
        """The record of one system run on one task: its config and hash, provenance (seeds, package versions,
        data hashes), the per-query values and their summary, and what the stages recorded."""
        retriever = system.retriever
        config: dict[str, Any] = {
            "task": task.name, "task_params": params_dict(task.params), "retriever": retriever.name,
            "retriever_params": params_dict(retriever.params), "metrics": [str(m) for m in metrics], "seed": seed,
            "split": split,
        }
        if system.name != retriever.name:  # a plain retriever keeps the config (and hash) it had before systems
            config["system"] = system.name
            config["stages"] = system.stages_record()
        if retriever.produces == "vectors" and index != type(index)():  # a non-default index: part of the hash
            config["index"] = dataclasses.asdict(index)
        config_hash = stable_hash(config)
        now = time.time()
        test = data.split(split)
        return cls(
            run_id=run_id_for(config_hash, now),
            task=task.name,
            retriever=retriever.name,
            system=system.name,
            stages=system.stages_record(),
            ks=sorted({m.k for m in metrics}),
            query_ids=list(test.query_ids),
            per_query={n: vals.tolist() for n, vals in outcome.per_query.items()},
            summary={n: float(vals.mean()) for n, vals in outcome.per_query.items()},
            created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
            split=split,
            task_params=config["task_params"],
            retriever_params=config["retriever_params"],
            retriever_info={"kind": system.retriever_meta.kind, "doc_space": outcome.doc_space, "m": outcome.base.m,
                            "produces": retriever.produces, **retriever.info()},
            task_info={"kind": TASKS.get(task.name)[0].kind, "modality": data.modality, **data.info},
            seed=seed,
            config_hash=config_hash,
            corpus_size=len(data.corpus),
            data_hash=data.data_hash(),
            versions=package_versions(),
            timings={k: round(v, 4) for k, v in timings.items()},
            extra=outcome.extra,
        )

    def values(self, metric: str) -> np.ndarray:
        if metric not in self.per_query:
            raise BenchError(f"run {self.run_id} has no metric {metric}; it has {', '.join(self.per_query)}")
        return np.asarray(self.per_query[metric], dtype=np.float64)


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._=+-]+", "_", name)


SLUG = 80  # characters of a folded system name kept readable
MAX_FOLDER = 100  # a system folder name is at most this long (a file name may have 255 bytes; `.trec` is added)


def system_folder(system: str) -> str:
    """The folder name of a system under results/<task>/: the canonical name when it is filesystem-safe and at most
    MAX_FOLDER characters (a plain retriever name keeps the folder it always had), else a readable slug of its first
    SLUG characters plus 8 hex digits of the sha256 of the exact name, so two systems never share a folder and no
    name is too long for the filesystem. The record inside holds the exact name."""
    import hashlib

    safe = re.sub(r"[^A-Za-z0-9._=+@()\[\],-]+", "_", system)
    if safe == system and not system.startswith(".") and len(system) <= MAX_FOLDER:
        return system
    digest = hashlib.sha256(system.encode("utf-8")).hexdigest()[:8]
    return f"{safe[:SLUG]}-{digest}"


CORPUS_FOLDER = "corpus="  # results/<task>/corpus=<tag>/<system>/: runs of a task whose corpus is the user's choice


def corpus_tag(task_info: dict[str, Any]) -> str | None:
    """The corpus tag of a run's task (`psgs_w100-1a2b3c4d`, `wiki-vital`), set by tasks whose corpus is chosen by
    the user (AmbigQA, QAMPARI); None for tasks with a corpus of their own."""
    tag = task_info.get("corpus_tag")
    return str(tag) if tag else None


def run_dir(results_dir: str | Path, task: str, system: str, corpus: str | None = None) -> Path:
    """results/<task>/<system>, or results/<task>/corpus=<tag>/<system> for a task run on a corpus of the user's
    choice, so that runs on different corpora never share a folder."""
    base = Path(results_dir) / _safe(task)
    if corpus:
        base = base / f"{CORPUS_FOLDER}{_safe(corpus)}"
    return base / system_folder(system)


def save_run(result: RunResult, results_dir: str | Path, ranking: np.ndarray | None = None,
             doc_ids: Sequence[str] | None = None, scores: np.ndarray | None = None) -> Path:
    """Write `<run-id>.json` (and `<run-id>.trec` when a ranking is given), each atomically. Returns the JSON path.

    `scores` are the system's real (fused / re-ranked) scores of `ranking`; without them the TREC file carries
    depth − rank (runs written before the pipeline kept scores)."""
    folder = run_dir(results_dir, result.task, result.system, corpus_tag(result.task_info))
    path = folder / f"{result.run_id}.json"
    if ranking is not None and doc_ids is not None:
        nudged = write_trec_run(folder / f"{result.run_id}.trec", result.query_ids, ranking, doc_ids, result.system,
                                scores=scores)
        result.extra["trec"] = {"scores": TREC_SCORES if scores is not None else "depth − rank",
                                "order_preserving": True, "nudged": nudged}
    text = json.dumps(strict_json(result.to_dict()), indent=1, sort_keys=False, allow_nan=False) + "\n"
    with atomic_open(path, need=len(text.encode("utf-8"))) as fh:
        fh.write(text)
    return path


def strict_json(value: Any) -> Any:
    """A copy that strict JSON parsers accept: non-finite floats (NaN, ±inf) become None, numpy scalars and arrays
    become Python values. (json.dump would write bare NaN / Infinity tokens, which are not JSON.)"""
    if isinstance(value, dict):
        return {k: strict_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [strict_json(v) for v in value]
    if isinstance(value, np.ndarray):
        return strict_json(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def load_run(path: str | Path) -> RunResult:
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BenchError(f"{p}: no such run file") from None
    except json.JSONDecodeError as exc:
        raise BenchError(f"{p}: not valid JSON (line {exc.lineno}: {exc.msg})") from None
    except UnicodeDecodeError as exc:
        raise BenchError(f"{p}: not UTF-8 text (byte {exc.start}: {exc.reason})") from None
    except (RecursionError, OSError) as exc:
        raise BenchError(f"{p}: cannot be read as a run file ({type(exc).__name__})") from None
    if not isinstance(data, dict):
        raise BenchError(f"{p}: a run file holds a JSON object")
    check_run_record(data, str(p))  # types and finite numbers, one error line per bad field (bench/results/validate.py)
    return RunResult.from_dict(data, source=str(p))


def find_runs(results_dir: str | Path, task: str | None = None, system: str | None = None) -> list[Path]:
    """Run files under results_dir, optionally of one task and/or system (a plain retriever name is a system), in
    both layouts (<task>/<system>/ and <task>/corpus=<tag>/<system>/), sorted by task, system folder, then oldest
    first (run ids start with a UTC timestamp)."""
    root = Path(results_dir)
    folder = glob.escape(system_folder(system)) if system else "*"  # `[` in amer[sampling=teacher] is no glob
    task_glob = glob.escape(_safe(task)) if task else "*"
    found = {p for p in root.glob(f"{task_glob}/{folder}/*.json") if not p.parent.name.startswith(CORPUS_FOLDER)}
    found |= set(root.glob(f"{task_glob}/{CORPUS_FOLDER}*/{folder}/*.json"))

    def key(p: Path) -> tuple[str, str, str, str]:
        task_dir = p.parent.parent.parent if p.parent.parent.name.startswith(CORPUS_FOLDER) else p.parent.parent
        return task_dir.name, p.parent.name, p.name, str(p)

    return sorted(found, key=key)


def valid_runs(paths: Iterable[Path], on_skip: Callable[[str], None]) -> Iterator[tuple[RunResult, Path]]:
    """(record, path) of each file that reads back as a valid run; for every other one `on_skip` gets the one-line
    problem (naming the file), so one broken file does not hide the good ones beside it."""
    for path in paths:
        try:
            yield load_run(path), path
        except BenchError as exc:
            on_skip(str(exc))


def warn_skipped(problem: str) -> None:
    """The warning line for a results file skipped because it does not read back."""
    from bench.progress import warn

    warn(f"skipped {problem}; each system's newest valid run is used")
_TREC_SAFE = "".join(chr(c) for c in range(33, 127) if chr(c) != "%")  # printable ASCII but '%': kept as it is
_TREC_PLAIN = re.compile(r"[!-$&-~]*")  # ids made of those characters only: nothing to encode


def trec_id(identifier: str) -> str:
    """An id safe for the whitespace-separated TREC formats: whitespace and '%' percent-encoded (LIMIT's doc ids are
    people's names), every other character kept, so ids without whitespace are written unchanged."""
    if _TREC_PLAIN.fullmatch(identifier):
        return identifier
    return urllib.parse.quote(identifier, safe=_TREC_SAFE)


TREC_SCORES = ("the system's scores as float32, each equal score after the first of a tie lowered by the smallest "
               "float32 steps so that every list is strictly decreasing: trec_eval's re-sort keeps our order")


def strictly_decreasing(scores: np.ndarray) -> tuple[np.ndarray, int]:
    """Scores (one list, best first, finite) as float32 made strictly decreasing: a score not below the previous
    written one becomes the float32 just below it (np.nextafter). The order is ours; each value moves by as many
    float32 steps as the tie it ends is long. Returns the values and how many moved."""
    out = np.asarray(scores, dtype=np.float32).copy()
    if len(out) < 2 or bool(np.all(out[1:] < out[:-1])):
        return out, 0  # already strictly decreasing: the common case, no Python loop
    moved = 0
    for r in range(1, len(out)):
        if out[r] >= out[r - 1]:
            out[r] = np.nextafter(out[r - 1], np.float32(-np.inf), dtype=np.float32)
            moved += 1
    return out, moved


def write_trec_run(path: str | Path, query_ids: list[str], ranking: np.ndarray, doc_ids: Sequence[str], tag: str,
                   scores: np.ndarray | None = None) -> int:
    """TREC run format `qid Q0 docid rank score tag` with the system's real scores (`scores`, same shape as
    `ranking`), made strictly decreasing within each query (`strictly_decreasing`: equal scores lowered by float32
    steps) and printed with 9 significant digits, which tell float32 values apart. trec_eval and the tools built on it
    re-sort a run by score and break ties by document id; with no ties left they keep our order (equal scores by the
    lower corpus row). Without `scores`: depth − rank (the pre-stage format). Returns how many scores were lowered."""
    depth = ranking.shape[1]
    tag_t = trec_id(tag)
    docs: dict[int, str] = {}  # each document's TREC id, encoded once
    lines_total = int((ranking >= 0).sum())
    widest_qid = max((len(trec_id(q)) for q in query_ids), default=0)
    sample = [len(trec_id(doc_ids[d])) for d in ranking[:1].ravel().tolist() if d >= 0] or [16]
    need = lines_total * (widest_qid + max(sample) + len(tag_t) + 32)  # about: qid Q0 doc rank score tag
    nudged = 0
    with atomic_open(path, need=need) as fh:
        for i, (qid, row) in enumerate(zip(query_ids, ranking.tolist(), strict=True)):
            qid_t = trec_id(qid)
            n = next((j for j, doc in enumerate(row) if doc < 0), len(row))
            values: list[float] | None = None
            if scores is not None:
                written, moved = strictly_decreasing(scores[i, :n])
                nudged += moved
                values = written.tolist()
            lines = []
            for rank, doc in enumerate(row[:n]):
                if doc not in docs:
                    docs[doc] = trec_id(doc_ids[doc])
                score = f"{values[rank]:.9g}" if values is not None else str(depth - rank)
                lines.append(f"{qid_t} Q0 {docs[doc]} {rank + 1} {score} {tag_t}\n")
            fh.write("".join(lines))
    return nudged


def write_trec_qrels(path: str | Path, query_ids: Sequence[str], targets: Any, doc_ids: Sequence[str]) -> None:
    """TREC qrels `qid 0 docid 1`: every gold document of every answer cluster of a query, once, relevance 1.

    Qrels have no notion of answer clusters, so document Recall@k from a TREC tool equals our cluster Recall@k only
    when each cluster has exactly one gold document (as in the synthetic tasks). `targets` is a bench.data.task.Targets.
    """
    width = int(targets.doc.max(initial=0)) + 1
    keys = np.unique(np.asarray(targets.query, dtype=np.int64) * width + np.asarray(targets.doc, dtype=np.int64))
    with atomic_open(path) as fh:
        for key in keys.tolist():
            q, d = divmod(key, width)
            fh.write(f"{trec_id(query_ids[q])} 0 {trec_id(doc_ids[d])} 1\n")


def write_trec_cluster_qrels(path: str | Path, query_ids: Sequence[str], targets: Any,
                             doc_ids: Sequence[str]) -> None:
    """TREC qrels with the answer cluster in the iteration column, `qid cluster docid 1`: the subtopic qrels of
    ndeval / ir_measures, whose `StRecall@k` equals our Recall@k even when an answer has several gold documents
    (tests/results/test_strecall.py). `targets` is a bench.data.task.Targets; each (query, cluster, doc) is written
    once."""
    seen: set[tuple[int, int, int]] = set()
    with atomic_open(path) as fh:
        for q, c, d in zip(targets.query.tolist(), targets.cluster.tolist(), targets.doc.tolist(), strict=True):
            if (q, c, d) in seen:
                continue
            seen.add((q, c, d))
            fh.write(f"{trec_id(query_ids[q])} {c} {trec_id(doc_ids[d])} 1\n")
