"""`bench data prepare | info | audit`: map a real multi-answer task onto a corpus once, and look at what it holds.

- `prepare --task T --corpus PATH` runs the gold-passage mapping (progress bars) and caches the prepared task
  (<cache>/tasks/<task>/<key>/: queries.jsonl, qrels/<split>.tsv with a cluster column, meta.json);
- `info --task T` prints the questions left after each filtering step, split sizes and where they come from, answers
  per question, and the within-query vs random-pair gold similarity in a document encoder's space (with the paper's
  figure for the task when the task records one);
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
from rich.markup import escape
from rich.table import Table

from bench.cli import options as opt
from bench.cli.app import app
from bench.cli.output import print_whole
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
    say(f"prepared: {data.info.get('prepared', '(not a prepared task)')}")


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
    corpus = record["corpus"]
    where = corpus.get("path", corpus) if isinstance(corpus, dict) else corpus  # a label, else the corpus file
    out.print(f"[bold]{escape(task)}[/bold] on {escape(str(where))}", highlight=False, soft_wrap=True)
    _print_steps(data.info)
    table = Table("split", title="per split (m = answers of a question)")
    for column in ("questions", "answers / question", "min–max", "questions with m answers",
                   "gold passages / question"):
        table.add_column(column, justify="left" if column.startswith("questions with") else "right")
    for name, s in record["splits"].items():
        hist = ", ".join(f"m={k}: {v:,}" for k, v in s["targets_histogram"].items())
        table.add_row(name, f"{s['questions']:,}", f"{s['targets_mean']:.2f}", f"{s['targets_min']}–{s['targets_max']}",
                      hist, f"{s['gold_passages_per_question']:.1f}")
    print_whole(out, table)
    if data.info.get("gold_mapping"):  # gold passages found by alias matching (tasks/multianswer.py)
        say("gold passages / question: the corpus passages that contain one of the question's answers (any alias, "
            "normalised) among the retrieved candidates; an answer is found in many passages, and hitting any one of "
            "them counts as hitting the answer")
    else:
        say("gold passages / question: the relevant documents of a question in the task's relevance judgements")
    if "gold_similarity" in record:
        g = record["gold_similarity"]
        say(f"gold similarity ({encoder}, test split, one gold passage per answer): mean cosine "
            f"{g['within_mean']:.3f} between the answers of one question ({g['n_within_pairs']:,} pairs, every pair "
            f"of answers of every test question) vs {g['random_mean']:.3f} between answers of two random questions "
            f"({g['n_random_pairs']:,} sampled pairs, seed {g['seed']})")
        paper = data.info.get("paper_gold_similarity")
        if paper:
            say(f"  paper on {task}: {paper['within']:.2f} vs {paper['random']:.2f}, with another encoder over "
                "~21M Wikipedia passages. Each encoder has its own level for unrelated texts (random pairs average "
                f"{g['random_mean']:.3f} here, {paper['random']:.2f} in the paper) and the corpus differs, so compare "
                "which of the two is larger, not the values or their ratio")


def say(text: str) -> None:
    """One line of explanation, never wrapped inside a path or a number (soft wrap: the terminal folds it)."""
    out.print(escape(text), highlight=False, soft_wrap=True)


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
    table = Table("step", title="questions left after each step, per input file")
    for src in steps:
        table.add_column(_source(src), justify="right")
    names: list[str] = []
    for per in steps.values():
        names += [n for n in per if n not in names]
    for n in names:
        table.add_row(n, *(f"{steps[s][n]:,}" if n in steps[s] else "" for s in steps))
    print_whole(out, table)
    sizes = info.get("split_sizes")
    if sizes:
        say("splits, in questions: " + " · ".join(f"{k} {v:,}" for k, v in sizes.items()))
        record = info.get("split") or {}
        for line in _split_origin(steps, sizes, record):
            say("  " + line)
        if record.get("method"):
            say(f"  rule: {record['method']}")


def _source(src: str) -> str:
    return f"{src} file" if src in ("train", "dev", "test") else src


KEPT = "every answer has a gold passage"


def _split_origin(steps: dict[str, dict[str, int]], sizes: dict[str, int], record: dict[str, Any]) -> list[str]:
    """Where each split's questions come from, when the counts of the steps add up to the split sizes."""
    to_train: list[tuple[str, int]] = []
    to_test: list[tuple[str, int]] = []
    for src, per in steps.items():
        groups = [(k.strip().removeprefix("of which "), v) for k, v in per.items() if k.startswith("  of which ")]
        if groups:
            for group, n in groups:
                (to_test if group.endswith("test") else to_train).append((group, n))
        elif KEPT in per:  # the last step's count is what was kept (a cap or a relaxed train rule comes after KEPT)
            last = [k for k in per if not k.startswith("  of which ")][-1]
            (to_test if src in ("dev", "test") else to_train).append((f"{_source(src)}, kept", per[last]))
    n_train = sizes.get("train", 0) + sizes.get("val", 0)
    lines = []
    if to_train and sum(n for _, n in to_train) == n_train:
        val = f"; val is a seeded {record['val_fraction']:.0%} of them" if record.get("val_fraction") else ""
        lines.append(f"train and val together: {n_train:,} = " + " + ".join(f"{n:,} ({what})" for what, n in to_train)
                     + val)
    if to_test and sum(n for _, n in to_test) == sizes.get("test", -1):
        lines.append(f"test: {sizes['test']:,} = " + " + ".join(f"{n:,} ({what})" for what, n in to_test))
    return lines


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
    texts = {name: dict(zip(split.query_ids, split.texts or [], strict=False)) for name, split in data.splits.items()}

    def question(split: str, qid: str) -> str:
        text = texts.get(split, {}).get(qid)
        return f"{split} {qid}" + (f" {json.dumps(text, ensure_ascii=False)}" if text else "")

    say(f"audit of {task}: a test question leaks when it nearly repeats a train or val question — Jaccard ≥ "
        f"{rec['question_threshold']} of their normalised words, or ≥ {rec['gold_threshold']} of their gold-passage "
        "sets")
    for kind, label in (("duplicate_questions", "test questions whose words ≈ a train question's"),
                        ("duplicate_gold_sets", "test questions whose gold passages ≈ a train question's")):
        items = rec[kind]
        say(f"{label}: {len(items)}")
        for d in items[:show]:
            say(f"  {question('test', d['test_id'])}  ~  {question(d['split'], d['train_id'])}  "
                f"(Jaccard {d['jaccard']})")
        if len(items) > show:
            say(f"  … and {len(items) - show} more (--show N lists more)")
    for split, n in rec["repeated_gold"].items():
        say(f"{split}: {n:,} (question, passage) pairs in which one passage is gold for two or more of the question's "
            f"answers; {rec['questions_sharing_gold'][split]:,} questions have such a passage")
    leaked = rec["leaked_test_questions"]
    dropped = rec["dropped"]
    say(f"leaked test questions: {len(leaked)}; dropped: {len(dropped)}"
        + (" — drop them from a run with -t drop_leaked=true (e.g. bench run --task "
           f"{task} --retriever minilm -t drop_leaked=true)" if leaked and not dropped else ""))
    for qid in leaked[:show]:
        say(f"  {question('test', qid)}")
    if not leaked and not any(rec[k] for k in ("duplicate_questions", "duplicate_gold_sets")):
        say("no leak found")
