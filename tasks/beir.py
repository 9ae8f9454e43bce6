"""BEIR-format retrieval tasks: a corpus, queries, and qrels; every relevant document is its own answer cluster.

A query with r relevant documents has m = r clusters of one document each, so MRECALL@k asks for all r documents
in the top k (for k ≥ r) and Recall@k is the usual recall. Queries without a relevant document are dropped (they have
no target); how many is recorded in the task info. A qrels file may carry a fourth column, `cluster` (README "Data
formats"): the relevant documents of a query that share a cluster name form one answer cluster (several passages
covering one answer), in order of first appearance; a row without a cluster is its own cluster.

Layout of a task folder (`-t data_dir=PATH`):
    corpus.jsonl (`_id`, `title`, `text`) or corpus.tsv (DPR `id<TAB>text<TAB>title`)
    queries.jsonl (`_id`, `text`)
    qrels.jsonl (`query-id`, `corpus-id`, `score`; LIMIT) → one split, `test`
      or qrels/<split>.tsv | qrels/<split>.jsonl (BEIR) → one split per file
Judgements with score ≤ 0 are not relevant; a non-finite score is an error.

`train_fraction` > 0 (default 0: every query in `test`, as released) splits the queries of a single-split folder by a
seeded permutation (`split_seed`): that fraction goes to training, `val_fraction` of it to a `val` split, the rest to
`test`. The permutation, seed and sizes are recorded in the task info.

Registered tasks:
- `beir`: any folder in that layout (`-t data_dir=` is required);
- `limit-small`: LIMIT small (Weller et al. 2025; 46 docs, 1,000 queries, 2 relevant docs each) — by default read
  from the `shared/data/limit-small` folder beside the repository checkout (`../shared/data/limit-small` from the repo
  root), else from `../shared/data/limit-small` relative to the working directory; source: github.com/google-deepmind/
  limit, `data/limit-small/`;
- `limit`: full LIMIT (50k docs) from `-t data_dir=` (github.com/google-deepmind/limit, `data/limit/`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.data.corpus import CorpusIds, JsonlCorpus, Qrel, Queries, TsvCorpus, read_qrels, read_queries
from bench.data.paths import resolve_data_dir
from bench.data.task import Corpus, Split, Targets, Task, TaskData
from bench.errors import BenchError
from bench.registry import register_task


@dataclass(frozen=True)
class BeirParams:
    data_dir: str | None = None  # the task folder; relative paths are taken from the working directory
    train_fraction: float = 0.0  # share of the queries for train (+ val); 0 = all in test
    val_fraction: float = 0.1  # share of the train part held out as `val` (only when train_fraction > 0)
    split_seed: int = 0  # seed of the query permutation
    corpus_full_hash: bool = False  # re-hash the corpus file even when its size and mtime are unchanged


def split_by_fraction(split: Split, train_fraction: float, val_fraction: float, seed: int,
                      task: str) -> tuple[dict[str, Split], dict[str, object]]:
    """train / val / test by a seeded permutation of the split's queries; the record says how."""
    if not 0 <= train_fraction < 1:
        raise BenchError(f"task {task}: train_fraction must be in [0, 1), got {train_fraction}")
    if not 0 <= val_fraction < 1:
        raise BenchError(f"task {task}: val_fraction must be in [0, 1), got {val_fraction}")
    n = len(split)
    perm = np.random.default_rng(seed).permutation(n)
    n_train_all = int(round(train_fraction * n))
    n_val = int(round(val_fraction * n_train_all))
    if n - n_train_all < 1 or n_train_all - n_val < 1:
        raise BenchError(f"task {task}: train_fraction={train_fraction} leaves an empty train or test split of {n}")
    parts = {"train": np.sort(perm[n_val:n_train_all]), "val": np.sort(perm[:n_val]),
             "test": np.sort(perm[n_train_all:])}
    out = {name: split.subset(idx, name) for name, idx in parts.items() if len(idx)}
    record = {"method": "seeded permutation (numpy default_rng)", "seed": seed, "train_fraction": train_fraction,
              "val_fraction": val_fraction, "sizes": {k: len(v) for k, v in out.items()}}
    return out, record


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


def targets_from_qrels(qrels: list[Qrel], path: Path, queries: Queries, ids: Sequence[str],
                       corpus_path: Path | None = None) -> tuple[list[str], Targets]:
    """The judged queries (in queries-file order) and their answer clusters: relevant rows (score > 0) grouped by
    the `cluster` column, a row without one being its own cluster. Unknown query or corpus ids name file and line."""
    q_index = {qid: i for i, qid in enumerate(queries.ids)}
    lookup = ids.row if isinstance(ids, CorpusIds) else {d: r for r, d in enumerate(ids)}.get
    relevant: dict[int, dict[str, list[int]]] = {}
    for qrel in qrels:
        if qrel.query_id not in q_index:
            raise BenchError(f"{path}, line {qrel.line}: field 'query-id': {qrel.query_id!r} is not a query of the "
                             f"queries file")
        row = lookup(qrel.doc_id)
        if row is None or row < 0:
            raise BenchError(f"{path}, line {qrel.line}: field 'corpus-id': {qrel.doc_id!r} is not a document of "
                             f"{corpus_path or 'the corpus'}")
        if qrel.score <= 0:
            continue
        clusters = relevant.setdefault(q_index[qrel.query_id], {})
        docs = clusters.setdefault(f"c:{qrel.cluster}" if qrel.cluster is not None else f"d:{row}", [])
        if row not in docs:
            docs.append(row)
    order = sorted(relevant)
    if not order:
        raise BenchError(f"{path}: no query has a relevant document")
    targets = Targets.from_nested([list(relevant[q].values()) for q in order], n_docs=len(ids))
    return [queries.ids[q] for q in order], targets


class BeirTask(Task):
    """A BEIR-format folder as a multi-target task: every relevant document of a query is one answer cluster."""

    default_ks = (2, 10, 100)
    default_folder: str | None = None

    def load(self) -> TaskData:
        folder = resolve_data_dir(self.params.data_dir, self.default_folder, self.name)
        reader = _corpus_reader(folder)
        scan = reader.scan(force_hash=bool(getattr(self.params, "corpus_full_hash", False)))
        queries = read_queries(folder / "queries.jsonl")
        splits: dict[str, Split] = {}
        dropped: dict[str, int] = {}
        for split_name, path in _qrels_files(folder).items():
            qids, targets = targets_from_qrels(read_qrels(path), path, queries, scan.ids, reader.path)
            dropped[split_name] = len(queries.ids) - len(qids)
            text_of = dict(zip(queries.ids, queries.texts, strict=True))
            splits[split_name] = Split(split_name, qids, targets, texts=[text_of[q] for q in qids])
        split_record: dict[str, object] | None = None
        train_fraction = float(getattr(self.params, "train_fraction", 0.0))
        if train_fraction > 0:
            if list(splits) != ["test"]:
                raise BenchError(f"task {self.name}: train_fraction needs a folder with one split (test); "
                                 f"{folder} has {', '.join(splits)}")
            splits, split_record = split_by_fraction(splits["test"], train_fraction, self.params.val_fraction,
                                                     self.params.split_seed, self.name)
        corpus = Corpus(ids=scan.ids, fingerprint=scan.fingerprint, source=reader)
        info = {
            "source": str(folder),
            "corpus": reader.describe() | {"fingerprint": scan.fingerprint_info},
            "split": split_record or {"method": "as released"},
            "audit": {"ran": False, "dropped": []},  # `bench data audit` runs on the multi-answer tasks
            "target_representatives": "each answer cluster's first listed relevant document; without a cluster "
                                      "column every relevant document is its own answer cluster",
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
    default_ks = (2, 10, 20)  # as the LIMIT paper on the small set: @100 > 46 docs would be a trivial 1.0


@register_task(
    "limit",
    description="LIMIT (50k docs, 1,000 queries, 2 relevant docs each) from -t data_dir=PATH (google-deepmind/limit)",
    kind="beir",
    params=BeirParams,
)
class LimitTask(BeirTask):
    pass
