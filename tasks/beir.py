"""BEIR-format retrieval tasks: a corpus, queries, and qrels; every relevant document is its own answer cluster.

A query with r relevant documents has m = r clusters of one document each, so MRECALL@k asks for all r documents
in the top k (for k ≥ r) and Recall@k is the usual recall. Queries without a relevant document are dropped (they have
no target); how many is recorded in the task info.

Layout of a task folder (`-t data_dir=PATH`):
    corpus.jsonl (`_id`, `title`, `text`) or corpus.tsv (DPR `id<TAB>text<TAB>title`)
    queries.jsonl (`_id`, `text`)
    qrels.jsonl (`query-id`, `corpus-id`, `score`; LIMIT) → one split, `test`
      or qrels/<split>.tsv | qrels/<split>.jsonl (BEIR) → one split per file
Judgements with score ≤ 0 are not relevant.

Registered tasks:
- `beir`: any folder in that layout (`-t data_dir=` is required);
- `limit-small`: LIMIT small (Weller et al. 2025; 46 docs, 1,000 queries, 2 relevant docs each) — by default read
  from the `shared/data/limit-small` folder beside the repository checkout (`../shared/data/limit-small` from the repo
  root), else from `../shared/data/limit-small` relative to the working directory; source: github.com/google-deepmind/
  limit, `data/limit-small/`;
- `limit`: full LIMIT (50k docs) from `-t data_dir=` (github.com/google-deepmind/limit, `data/limit/`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.errors import BenchError
from bench.registry import register_task
from bench.task import Corpus, Split, Targets, Task, TaskData
from tasks.corpus import JsonlCorpus, TsvCorpus, read_qrels, read_queries

REPO_ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class BeirParams:
    data_dir: str | None = None  # the task folder; relative paths are taken from the working directory


def shared_data_candidates(name: str) -> list[Path]:
    """Where a folder of the project's shared real data may be: beside the checkout, then beside the cwd."""
    return [REPO_ROOT.parent / "shared" / "data" / name, Path.cwd().parent / "shared" / "data" / name]


def resolve_data_dir(given: str | None, default_name: str | None, task: str) -> Path:
    if given:
        path = Path(given).expanduser()
        if not path.is_dir():
            raise BenchError(f"task {task}: data_dir {str(path)!r} is not a folder")
        return path.resolve()
    if default_name is None:
        raise BenchError(f"task {task} needs a data folder: pass -t data_dir=PATH (corpus, queries, qrels in BEIR "
                         f"form)")
    candidates = shared_data_candidates(default_name)
    for path in candidates:
        if path.is_dir():
            return path.resolve()
    raise BenchError(
        f"task {task}: no data folder given and none found at {', '.join(str(c) for c in candidates)}; "
        f"pass -t data_dir=PATH"
    )


def _corpus_reader(folder: Path) -> JsonlCorpus | TsvCorpus:
    if (folder / "corpus.jsonl").is_file():
        return JsonlCorpus(folder / "corpus.jsonl")
    if (folder / "corpus.tsv").is_file():
        return TsvCorpus(folder / "corpus.tsv")
    raise BenchError(f"{folder}: no corpus.jsonl or corpus.tsv")


def _qrels_files(folder: Path) -> dict[str, Path]:
    if (folder / "qrels.jsonl").is_file():
        return {"test": folder / "qrels.jsonl"}
    sub = folder / "qrels"
    files = {p.stem: p for p in sorted(sub.glob("*.tsv")) + sorted(sub.glob("*.jsonl"))} if sub.is_dir() else {}
    if not files:
        raise BenchError(f"{folder}: no qrels.jsonl and no qrels/<split>.tsv")
    return files


class BeirTask(Task):
    """A BEIR-format folder as a multi-target task: every relevant document of a query is one answer cluster."""

    default_ks = (2, 10, 100)
    default_folder: str | None = None

    def load(self) -> TaskData:
        folder = resolve_data_dir(self.params.data_dir, self.default_folder, self.name)
        reader = _corpus_reader(folder)
        scan = reader.scan()
        row_of = scan.row_of()
        queries = read_queries(folder / "queries.jsonl")
        q_index = {qid: i for i, qid in enumerate(queries.ids)}
        splits: dict[str, Split] = {}
        dropped: dict[str, int] = {}
        for split_name, path in _qrels_files(folder).items():
            relevant: dict[int, list[int]] = {}
            for qrel in read_qrels(path):
                if qrel.query_id not in q_index:
                    raise BenchError(
                        f"{path}, line {qrel.line}: field 'query-id': {qrel.query_id!r} is not a query of "
                        f"{folder / 'queries.jsonl'}"
                    )
                if qrel.doc_id not in row_of:
                    raise BenchError(
                        f"{path}, line {qrel.line}: field 'corpus-id': {qrel.doc_id!r} is not a document of "
                        f"{reader.path}"
                    )
                if qrel.score <= 0:
                    continue
                docs = relevant.setdefault(q_index[qrel.query_id], [])
                row = row_of[qrel.doc_id]
                if row not in docs:
                    docs.append(row)
            order = sorted(relevant)  # queries in queries-file order
            dropped[split_name] = len(queries.ids) - len(order)
            if not order:
                raise BenchError(f"{path}: no query has a relevant document")
            targets = Targets.from_nested([[[d] for d in relevant[q]] for q in order])
            splits[split_name] = Split(
                split_name, [queries.ids[q] for q in order], targets, texts=[queries.texts[q] for q in order]
            )
        corpus = Corpus(ids=scan.ids, fingerprint=scan.fingerprint, source=reader)
        info = {
            "source": str(folder),
            "corpus": reader.describe(),
            "target_representatives": "every relevant document is its own answer cluster",
            "queries_without_relevant_docs": dropped,
            "answers_per_query": {
                s: float(np.mean(sp.targets.n_clusters)) for s, sp in splits.items()
            },
        }
        return TaskData(self.name, corpus, splits, modality="text", info=info)


@register_task(
    "beir",
    description="any BEIR-format folder (-t data_dir=PATH): corpus, queries, qrels; each relevant doc one cluster",
    kind="beir",
    params=BeirParams,
)
class GenericBeirTask(BeirTask):
    pass


@register_task(
    "limit-small",
    description="LIMIT small (46 docs, 1,000 queries, 2 relevant docs each); ../shared/data/limit-small by default",
    kind="beir",
    params=BeirParams,
)
class LimitSmallTask(BeirTask):
    default_folder = "limit-small"


@register_task(
    "limit",
    description="LIMIT (50k docs, 1,000 queries, 2 relevant docs each) from -t data_dir=PATH (google-deepmind/limit)",
    kind="beir",
    params=BeirParams,
)
class LimitTask(BeirTask):
    pass
