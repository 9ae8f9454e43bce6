"""`bench data prepare | info | audit`: map a real multi-answer task onto a corpus once, and look at what it holds.

- `prepare --task T --corpus PATH` runs the gold-passage mapping (progress bars) and caches the prepared task
  (<cache>/tasks/<task>/<key>/: queries.jsonl, qrels/<split>.tsv with a cluster column, meta.json);
- `info --task T` prints the questions left after each filtering step, split sizes, targets per question, and the
  within-query vs random-pair gold similarity in a document encoder's space (paper: 0.90 vs 0.77 on AmbigQA);
- `audit --task T` prints the leak audit (bench/data/audit.py); `-t drop_leaked=true` shows what that parameter removes
  from a run (the run itself drops them; nothing persists between commands).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from bench.cli import options as opt
from bench.cli.app import app
from bench.errors import BenchError

out = Console()
data_app = typer.Typer(help="Prepare real multi-answer tasks (AmbigQA, QAMPARI), show their counts, audit them.",
                       no_args_is_help=True)
app.add_typer(data_app, name="data")


def _load(task: str, corpus: Path | None, data_dir: Path | None, params: list[str] | None) -> Any:
    from bench.data.task import build_task

    extra = list(params or [])
    if corpus is not None:
        extra.append(f"corpus={corpus}")
    if data_dir is not None:
        extra.append(f"data_dir={data_dir}")
    return build_task(task, extra).load()


_CORPUS = typer.Option(None, "--corpus", help="passage corpus: DPR TSV, JSONL, a folder or glob of JSONL files "
                                              "(QAMPARI's chunks), or wiki-vital (the offline stand-in)")
_DATA = typer.Option(None, "--data-dir", help="folder of the task's question files")


@data_app.command("prepare")
def prepare(
    task: opt.Task,
    corpus: Path = _CORPUS,
    data_dir: Path = _DATA,
    param: opt.TaskParams = None,
) -> None:
    """Map gold passages over the corpus once and cache the prepared task (a rerun is served from the cache).

    --task is ambigqa or qampari (any task with a prepared form). Under torchrun the ranks share out the encoding of
    the corpus for the dense candidates; rank 0 maps and prints."""
    from bench.distributed import init as join_ranks

    world = join_ranks()
    data = _load(task, corpus, data_dir, param)
    if world is not None and not world.is_main:
        return
    _print_steps(data.info)
    out.print(f"prepared: {data.info.get('prepared', '(not a prepared task)')}")


@data_app.command("info")
def info(
    task: opt.Task,
    corpus: Path = _CORPUS,
    data_dir: Path = _DATA,
    param: opt.TaskParams = None,
    encoder: str = typer.Option("minilm", "--encoder", help="document encoder for the gold similarity ('none': skip)"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object instead of tables"),
) -> None:
    """Counts after each filtering step, split sizes, targets per question, gold similarity."""
    data = _load(task, corpus, data_dir, param)
    record: dict[str, Any] = {"task": task, "corpus": data.info.get("corpus_label") or data.info.get("corpus"),
                              "steps": data.info.get("steps"), "splits": {}}
    for name, split in data.splits.items():
        m = split.targets.n_clusters
        docs = np.bincount(split.targets.query, minlength=len(split))
        values, counts = np.unique(m, return_counts=True)
        record["splits"][name] = {"questions": len(split), "targets_mean": round(float(m.mean()), 3),
                                  "targets_min": int(m.min()), "targets_max": int(m.max()),
                                  "targets_histogram": {int(k): int(v) for k, v in zip(values, counts, strict=True)},
                                  "gold_passages_per_question": round(float(docs.mean()), 2)}
    if encoder != "none":
        record["gold_similarity"] = _gold_similarity(data, encoder)
    if as_json:
        out.print_json(json.dumps(record, default=str))
        return
    out.print(f"[bold]{task}[/bold] on {record['corpus']}")
    _print_steps(data.info)
    table = Table("split", "questions", "targets / question", "min–max", "histogram of m", "gold passages / q")
    for name, s in record["splits"].items():
        hist = ", ".join(f"{k}:{v}" for k, v in s["targets_histogram"].items())
        table.add_row(name, str(s["questions"]), f"{s['targets_mean']:.2f}", f"{s['targets_min']}–{s['targets_max']}",
                      hist, f"{s['gold_passages_per_question']:.1f}")
    out.print(table)
    if "gold_similarity" in record:
        g = record["gold_similarity"]
        out.print(f"gold similarity ({encoder}, test split, one representative per answer): within-query mean "
                  f"{g['within_mean']:.3f} vs random-pair mean {g['random_mean']:.3f} "
                  f"({g['n_within_pairs']} / {g['n_random_pairs']} pairs; paper on AmbigQA: 0.90 vs 0.77)")


def _gold_similarity(data: Any, encoder: str) -> dict[str, Any]:
    from bench.metrics.diversity import gold_similarity
    from bench.systems.retriever import VectorRetriever, build_retriever
    from bench.systems.session import Session

    retriever = build_retriever(encoder)
    if not isinstance(retriever, VectorRetriever):
        raise BenchError(f"--encoder {encoder!r} has no document embeddings; name a dense retriever (e.g. minilm)")
    emb: Any = Session().corpus_index(data, retriever)[0]  # the index's vector store: rows by corpus row
    split = data.splits.get("test") or next(iter(data.splits.values()))
    g = gold_similarity(split.targets, emb).to_dict()
    return {k: g[k] for k in ("within_mean", "random_mean", "n_within_pairs", "n_random_pairs", "mode", "seed")}


def _print_steps(info: dict[str, Any]) -> None:
    steps = info.get("steps")
    if not steps:
        return
    table = Table("step", *steps.keys(), title="questions left after each step")
    names: list[str] = []
    for per in steps.values():
        names += [n for n in per if n not in names]
    for n in names:
        table.add_row(n, *(f"{steps[s][n]:,}" if n in steps[s] else "" for s in steps))
    out.print(table)
    if "split_sizes" in info:
        out.print("splits: " + ", ".join(f"{k} {v:,}" for k, v in info["split_sizes"].items())
                  + f"  ({info.get('split', {}).get('method', '')})")


@data_app.command("audit")
def audit_cmd(
    task: opt.Task,
    corpus: Path = _CORPUS,
    data_dir: Path = _DATA,
    param: opt.TaskParams = None,
    drop: bool = typer.Option(False, "--drop", hidden=True, help="gone: pass -t drop_leaked=true instead"),
    show: int = typer.Option(10, "--show", help="list at most this many findings of each kind"),
) -> None:
    """Test questions duplicating train (by normalised text or by gold-passage set), shared gold passages.

    `-t drop_leaked=true` shows what the same parameter drops from `bench run`."""
    from bench.data.audit import apply_audit

    if drop:  # a drop that outlived this command would change later runs unseen; the run's own parameter says it
        raise BenchError("--drop is gone: leaked test questions are dropped by the run that should not see them, "
                         "with -t drop_leaked=true on `bench run` (recorded in its results); `bench data audit -t "
                         "drop_leaked=true` shows what that drops")
    data = _load(task, corpus, data_dir, param)
    rec = data.info.get("audit")
    if rec is None:
        data = apply_audit(data, False)
        rec = data.info["audit"]
    out.print(f"[bold]audit of {task}[/bold] (thresholds: question Jaccard ≥ {rec['question_threshold']}, "
              f"gold-set Jaccard ≥ {rec['gold_threshold']})")
    for kind, label in (("duplicate_questions", "test questions ≈ a train question"),
                        ("duplicate_gold_sets", "test gold sets ≈ a train gold set")):
        items = rec[kind]
        out.print(f"{label}: {len(items)}")
        for d in items[:show]:
            out.print(f"  test {d['test_id']} ~ {d['split']} {d['train_id']} (Jaccard {d['jaccard']})")
    for split, n in rec["repeated_gold"].items():
        out.print(f"{split}: {n} gold passages repeated across a question's answers; "
                  f"{rec['questions_sharing_gold'][split]} questions with answers sharing a gold passage")
    out.print(f"leaked test questions: {len(rec['leaked_test_questions'])}; dropped: {len(rec['dropped'])}")
    if not rec["leaked_test_questions"] and not any(rec[k] for k in ("duplicate_questions", "duplicate_gold_sets")):
        out.print("no leak found")
