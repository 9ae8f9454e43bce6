"""What the real multi-answer tasks (AmbigQA, QAMPARI) share: gold-passage mapping over a corpus of any size, the keep
rule, seeded splits, and the prepared-task folder (BEIR layout with a qrels cluster column).

Gold mapping: for each search text (AmbigQA: the question; QAMPARI: each answer's proof snippets) the
top-`depth` candidates of BM25 (bench/index/bm25.py) and, when asked, of a dense retriever are collected; a candidate
is a
gold passage of an answer when its normalised `title text` contains one of the answer's normalised aliases as a
whole-token substring. The corpus is then streamed once to test only the candidate rows, so no passage text is
held in memory.

Answer normalisation (`normalise`, `contains_alias`) lives in bench/data/answers.py: the leak audit uses it too. The
matcher is a mapping parameter (`matcher=harness`, ours, or `dpr`, DPR's has_answer as the reference implementation
uses it); so is an optional cap on the number of answers a kept question has (`max_answers`, the reference's 5).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from bench.data.answers import matcher, normalise
from bench.data.corpus import CorpusReader, _json_lines, document_text, open_corpus, read_qrels, read_queries
from bench.data.task import Corpus, Split, TaskData
from bench.device import resolve
from bench.distributed import World
from bench.distributed import current as current_world
from bench.errors import BenchError
from bench.index import IndexSpec, corpus_store, open_index
from bench.storage.cache import cache_root, file_sha256, stable_hash
from bench.systems.context import RunContext
from bench.systems.names import parse_system
from bench.systems.retriever import VectorRetriever, build_retriever

MAPPING_VERSION = 2


@dataclass
class Answer:
    """One answer cluster: its aliases (as given) and the texts searched to find its candidates (none: the
    question's candidates are used)."""

    aliases: list[str]
    search_texts: list[str] = field(default_factory=list)

    def normalised(self, form: Callable[[str], str] = normalise) -> list[str]:
        """The distinct non-empty forms of the aliases under a matcher's `form` (default: ours, `normalise`)."""
        out: list[str] = []
        for a in self.aliases:
            n = form(a)
            if n and n not in out:
                out.append(n)
        return out


@dataclass
class Question:
    qid: str
    text: str
    source: str  # which file it came from (train, dev): the key of its step counts
    answers: list[Answer]
    group: str = ""  # a finer origin the split rule uses (AmbigQA: which half of dev)


@dataclass
class StepCounts:
    """Questions left after each filtering step, per source file, in order."""

    steps: dict[str, dict[str, int]] = field(default_factory=dict)

    def add(self, source: str, step: str, n: int) -> None:
        self.steps.setdefault(source, {})[step] = n


def read_json_array(path: Path) -> list[tuple[int, Any]]:
    """(line number, element) for each element of a top-level JSON array, so errors can name the line."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BenchError(f"{path}: no such file") from None
    except UnicodeDecodeError as exc:
        raise BenchError(f"{path}: not valid UTF-8 ({exc.reason})") from None
    dec = json.JSONDecoder()
    pos = _skip_ws(text, 0)
    if pos >= len(text) or text[pos] != "[":
        raise BenchError(f"{path}, line 1: expected a JSON array of questions")
    out: list[tuple[int, Any]] = []
    pos = _skip_ws(text, pos + 1)
    line, counted = 1, 0
    while pos < len(text) and text[pos] != "]":
        line += text.count("\n", counted, pos)
        counted = pos
        try:
            obj, end = dec.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            raise BenchError(f"{path}, line {exc.lineno}: not valid JSON ({exc.msg}, column {exc.colno})") from None
        out.append((line, obj))
        pos = _skip_ws(text, end)
        if pos < len(text) and text[pos] == ",":
            pos = _skip_ws(text, pos + 1)
        elif pos < len(text) and text[pos] != "]":
            line += text.count("\n", counted, pos)
            raise BenchError(f"{path}, line {line}: expected ',' or ']' between questions")
    return out


def _skip_ws(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\r\n":
        pos += 1
    return pos


def jsonl_records(path: Path) -> Iterable[tuple[int, dict[str, Any]]]:
    return _json_lines(path)


# ------------------------------------------------------------------------------------------------- gold mapping


@dataclass
class MappingParams:
    depth: int = 500
    dense: str = "minilm"  # a registered dense retriever for the second candidate list, or "none"
    bm25_k1: float = 0.9
    bm25_b: float = 0.4
    matcher: str = "harness"  # how an alias is found in a passage: harness | dpr (bench/data/answers.py)

    def key(self) -> dict[str, Any]:
        """What shapes the mapping, for the prepared task's cache key: the default matcher keeps the key it had
        before matchers were a parameter."""
        out = asdict(self)
        if out["matcher"] == "harness":
            out.pop("matcher")
        return out


def bm25_candidates(corpus: Corpus, texts: Sequence[str], depth: int, k1: float, b: float,
                    progress: Callable[[str, int, int], None] | None = None) -> np.ndarray:
    """(len(texts), depth) corpus rows of BM25's top-`depth` per text (-1 padded)."""
    from bench.index.bm25 import BM25Params, load_or_build_bm25

    n = len(corpus)
    done = [0]

    def tick(step: int) -> None:
        done[0] += step
        if progress is not None and (done[0] % 2000 == 0 or done[0] == n):
            progress("bm25 index", done[0], n)

    index = load_or_build_bm25(corpus, BM25Params(k1=k1, b=b), progress=tick)
    rows = np.full((len(texts), depth), -1, dtype=np.int32)  # int32: corpus rows < 2^31, half the memory
    for i, t in enumerate(texts):
        rows[i] = index.search([t], depth)[1][0]
        if progress is not None and ((i + 1) % 200 == 0 or i + 1 == len(texts)):
            progress("bm25 search", i + 1, len(texts))
    return rows


def dense_candidates(corpus: Corpus, texts: Sequence[str], depth: int, retriever_name: str) -> tuple[np.ndarray,
                                                                                                       str]:
    """(len(texts), depth) rows of a dense retriever's top-`depth` (over the same cached corpus embeddings that
    `bench run` uses), and the retriever's embedding space."""
    retriever, store, encoder = dense_store(corpus, retriever_name)
    index = open_index(IndexSpec(), store, resolve("auto", source="cli"))
    data = TaskData("gold-mapping", corpus, {}, modality="text")
    ctx = RunContext(task=data, corpus_embeddings=store, index=index)
    q = retriever.encode_texts(list(texts), ctx)
    _, rows = index.search(q, min(depth, len(corpus)))
    if rows.shape[1] < depth:
        rows = np.pad(rows, ((0, 0), (0, depth - rows.shape[1])), constant_values=-1)
    return rows.astype(np.int32), encoder.cache_key if encoder is not None else "vectors"


def dense_store(corpus: Corpus, retriever_name: str, world: World | None = None) -> tuple[VectorRetriever, Any, Any]:
    """A dense retriever (a name, with parameters if any: `minilm[shard_size=4096]`), the corpus's embedding store in
    its space (encoded when missing; shared out over the ranks under torchrun) and its document encoder."""
    spec = parse_system(retriever_name)
    if spec.expander is not None or spec.fuser is not None or spec.rerankers:
        raise BenchError(f"gold mapping: dense={retriever_name!r} must be a plain retriever")
    retriever = build_retriever(spec.retriever.name, spec.retriever.params)
    if not isinstance(retriever, VectorRetriever):
        raise BenchError(f"gold mapping: dense={retriever_name!r} is not a dense retriever")
    retriever.place(resolve("auto", source="cli"))
    encoder = retriever.document_encoder(TaskData("gold-mapping", corpus, {}, modality="text"))
    return retriever, corpus_store(corpus, encoder, world=world), encoder


def match_gold(corpus: Corpus, candidates: list[np.ndarray], aliases: list[list[str]],
               progress: Callable[[str, int, int], None] | None = None,
               form: Callable[[str], str] = normalise) -> list[list[int]]:
    """For unit u (an answer), the candidate rows `candidates[u]` whose passage contains one of `aliases[u]` (already
    in the matcher's `form`) as whole tokens. Streams the corpus once; only candidate rows are put in that form."""
    # (row, unit) pairs sorted by row, in int32 (16 bytes a pair with the sort order): candidates are unique per unit
    cands = [np.asarray(c[c >= 0], dtype=np.int32) for c in candidates]
    sizes = np.fromiter((len(c) for c in cands), dtype=np.int64, count=len(cands))
    rows = np.concatenate(cands) if cands else np.zeros(0, np.int32)
    units = np.repeat(np.arange(len(cands), dtype=np.int32), sizes)
    order = np.argsort(rows, kind="stable")
    rows, units = rows[order], units[order]
    del order
    needed, starts = np.unique(rows, return_index=True)
    ends = np.append(starts[1:], len(rows))
    padded_aliases = [[f" {a} " for a in al if a] for al in aliases]
    gold: list[list[int]] = [[] for _ in candidates]
    j = 0
    n = len(corpus)
    for row, (_, title, text) in enumerate(corpus.iter_texts()):
        if progress is not None and (row % 5000 == 0 or row == n - 1):
            progress("match aliases", row + 1, n)
        if j >= len(needed):
            break
        if row != needed[j]:
            continue
        padded = f" {form(document_text(title, text))} "
        for u in units[starts[j]:ends[j]].tolist():
            for a in padded_aliases[u]:
                if a in padded:  # = contains_alias, with the padding built once per passage
                    gold[u].append(row)
                    break
        j += 1
    return [sorted(g) for g in gold]


# --------------------------------------------------------------------------------------------- prepared folder


def prepared_folder(task: str, key: str) -> Path:
    return cache_root() / "tasks" / task / key


def write_prepared(folder: Path, queries: list[tuple[str, str]], qrels: dict[str, list[tuple[str, str, str]]],
                   meta: dict[str, Any]) -> None:
    """queries.jsonl, qrels/<split>.tsv (query-id, corpus-id, score, cluster) and meta.json into `folder` (the temp
    folder of a cache entry: bench/storage/cache.py renames it into place with a manifest)."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "queries.jsonl", "w", encoding="utf-8") as fh:
        for qid, text in queries:
            fh.write(json.dumps({"_id": qid, "text": text}, ensure_ascii=False) + "\n")
    (folder / "qrels").mkdir(exist_ok=True)
    for split, rows in qrels.items():
        with open(folder / "qrels" / f"{split}.tsv", "w", encoding="utf-8") as fh:
            fh.write("query-id\tcorpus-id\tscore\tcluster\n")
            for qid, did, cluster in rows:
                fh.write(f"{qid}\t{did}\t1\t{cluster}\n")
    (folder / "meta.json").write_text(json.dumps(meta, indent=1, ensure_ascii=False), encoding="utf-8")


def load_prepared(folder: Path, name: str, corpus: Corpus, reader: CorpusReader) -> TaskData:
    """A prepared folder as TaskData: one answer cluster per (query, cluster) of the qrels files."""
    from tasks.beir import targets_from_qrels

    meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
    queries = read_queries(folder / "queries.jsonl")
    splits: dict[str, Split] = {}
    for split in meta["splits"]:
        path = folder / "qrels" / f"{split}.tsv"
        qids, targets = targets_from_qrels(read_qrels(path), path, queries, corpus.ids)
        text_of = dict(zip(queries.ids, queries.texts, strict=True))
        splits[split] = Split(split, qids, targets, texts=[text_of[q] for q in qids])
    info = {k: v for k, v in meta.items() if k not in ("splits", "answers")}
    info["prepared"] = str(folder)
    return TaskData(name, corpus, splits, modality="text", info=info)


def corpus_of(path: str | os.PathLike[str], force_hash: bool = False) -> tuple[Corpus, CorpusReader, dict[str, Any]]:
    reader = open_corpus(path)
    scan = reader.scan(force_hash=force_hash)
    corpus = Corpus(ids=scan.ids, fingerprint=scan.fingerprint, source=reader)
    return corpus, reader, reader.describe() | {"fingerprint": scan.fingerprint, "fingerprint_info":
                                               scan.fingerprint_info, "n_passages": len(scan.ids)}


def corpus_folder_tag(path: str | Path, fingerprint: str) -> str:
    """The tag a user's corpus gives result folders: its file or folder name and 8 digits of its fingerprint, e.g.
    `psgs_w100-1a2b3c4d` (bench/results/record.py `run_dir`)."""
    name = Path(str(path)).name
    stem = name.split(".")[0] if "." in name and not name.startswith(".") else name
    return f"{re.sub(r'[^A-Za-z0-9_-]+', '_', stem).strip('_') or 'corpus'}-{fingerprint[:8]}"


def files_hash(paths: Iterable[Path]) -> list[tuple[str, str]]:
    return [(p.name, file_sha256(p)) for p in paths]


def seeded_split(ids: Sequence[str], seed: int, salt: str) -> np.ndarray:
    """A permutation of range(len(ids)) from (seed, salt); stable for the same inputs."""
    rng = np.random.default_rng([seed, int(stable_hash(salt, 8), 16)])
    return rng.permutation(len(ids))


def mapping_record(params: MappingParams, dense_space: str | None) -> dict[str, Any]:
    return {**asdict(params), "dense_space": dense_space, "normalisation": matcher(params.matcher)[1],
            "version": MAPPING_VERSION,
            "bm25": "bench/index/bm25.py (bm25s, lucene, English stopwords, Snowball stemmer)"}


# ------------------------------------------------------------------------------------------------- the procedure


class _Bars:
    """Rich progress bars keyed by description, created on first use (stderr, transient)."""

    def __init__(self) -> None:
        from bench.progress import make_progress

        self.progress = make_progress()
        self.tasks: dict[str, Any] = {}

    def __enter__(self) -> _Bars:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.progress.__exit__(*exc)

    def __call__(self, desc: str, done: int, total: int) -> None:
        if desc not in self.tasks:
            self.tasks[desc] = self.progress.add_task(desc, total=total, status="")
        self.progress.update(self.tasks[desc], completed=done, total=total)


@contextlib.contextmanager
def _bars(show: bool) -> Iterator[Callable[[str, int, int], None] | None]:
    if not show:
        yield None
        return
    with _Bars() as bars:
        yield bars


def map_questions(corpus: Corpus, questions: list[Question], mapping: MappingParams, search: str,
                  progress: bool = False) -> tuple[list[list[list[int]]], str | None]:
    """gold[q][a] = corpus rows of answer a of question q. `search`: "question" (candidates of the question text,
    BM25 + dense) or "proof" (candidates of each answer's proof snippets, BM25)."""
    if mapping.depth <= 0:
        raise BenchError(f"depth must be > 0, got {mapping.depth}")
    units = [(qi, ai) for qi, q in enumerate(questions) for ai in range(len(q.answers))]
    dense_space = None
    if search == "question":
        texts = [q.text for q in questions]
        owner = np.arange(len(questions))
    else:
        texts, own = [], []
        for u, (qi, ai) in enumerate(units):
            for t in questions[qi].answers[ai].search_texts:
                texts.append(t)
                own.append(u)
        owner = np.asarray(own, dtype=np.int64)
    lists = []
    if texts:
        with _bars(progress) as bars:
            lists.append(bm25_candidates(corpus, texts, mapping.depth, mapping.bm25_k1, mapping.bm25_b, bars))
    if texts and mapping.dense not in ("", "none"):  # its encoder draws its own progress bars
        rows, dense_space = dense_candidates(corpus, texts, mapping.depth, mapping.dense)
        lists.append(rows)
    per_text = np.concatenate(lists, axis=1) if lists else np.zeros((0, 0), np.int32)
    if search == "question":
        candidates = [per_text[qi] for qi, _ in units]
    else:
        by_unit: list[list[np.ndarray]] = [[] for _ in units]
        for ti, u in enumerate(owner.tolist()):
            by_unit[u].append(per_text[ti])
        candidates = [np.unique(np.concatenate(c)) if c else np.zeros(0, np.int64) for c in by_unit]
    candidates = [np.unique(c[c >= 0]) for c in candidates]
    form = matcher(mapping.matcher)[0]
    aliases = [questions[qi].answers[ai].normalised(form) for qi, ai in units]
    with _bars(progress) as bars:
        flat = match_gold(corpus, candidates, aliases, bars, form)
    gold: list[list[list[int]]] = [[[] for _ in q.answers] for q in questions]
    for (qi, ai), rows_ in zip(units, flat, strict=True):
        gold[qi][ai] = rows_
    return gold, dense_space


TRAIN_GOLD_RULES = ("every", "two")  # which train questions are kept: every answer has gold / at least two have


def _keep_for_train(q: Question, gold: list[list[int]], assign: Callable[[Question], str]
                    ) -> tuple[Question, list[list[int]]] | None:
    """The question as `train_gold="two"` keeps it: whole when every answer has gold; a train question with at least
    two answers with gold, restricted to those answers; else None."""
    if all(len(rows) for rows in gold):
        return q, gold
    if assign(q) != "train":
        return None
    pairs = [(a, rows) for a, rows in zip(q.answers, gold, strict=True) if len(rows)]
    if len(pairs) < 2:
        return None
    return replace(q, answers=[a for a, _ in pairs]), [rows for _, rows in pairs]


def prepare_task(name: str, parse: Callable[[StepCounts], tuple[list[Question], dict[str, Any]]],
                 assign: Callable[[Question], str], files: list[Path], corpus_path: str | Path, corpus_label: str,
                 mapping: MappingParams, seed: int, val_fraction: float, drop_leaked: bool, force_hash: bool,
                 search: str, progress: bool = True, key_extra: Any = None, corpus_tag: str = "",
                 max_answers: int | None = None, train_gold: str = "every") -> TaskData:
    """Parse, map gold passages, keep, split and write the prepared folder once (cached by input hashes and
    parameters); then load it, run the audit and record it. `corpus_tag` names the corpus in result folders
    (bench/results/record.py). `max_answers` drops the questions left with more answers than that once every answer
    has a gold passage (None: no cap).

    The keep rule: a question is kept when every answer has a gold passage. `train_gold="two"` relaxes it for the
    questions `assign` puts in train (and so val): kept when at least two answers have one, with the answers that
    have none dropped. The test split always keeps the strict rule."""
    from bench.data.audit import apply_audit

    if not 0 <= val_fraction < 1:
        raise BenchError(f"task {name}: val_fraction must be in [0, 1), got {val_fraction}")
    try:
        matcher(mapping.matcher)
    except ValueError as exc:
        raise BenchError(f"task {name}: {exc}") from None
    world = current_world()  # under torchrun: rank 0 scans and maps, every rank encodes its share of the corpus
    if world is None:
        corpus, reader, corpus_info = corpus_of(corpus_path, force_hash)
    else:
        with world.rank_zero_first(f"scan/{name}", "scanning the corpus"):
            corpus, reader, corpus_info = corpus_of(corpus_path, force_hash)
    parts = [name, files_hash(files), corpus.fingerprint, mapping.key(), seed, val_fraction, MAPPING_VERSION, search,
             key_extra]
    if train_gold not in TRAIN_GOLD_RULES:
        raise BenchError(f"task {name}: train_gold must be one of {', '.join(TRAIN_GOLD_RULES)}, got {train_gold!r}")
    if max_answers is not None:  # no cap keeps the key it had before the cap was a parameter
        parts.append({"max_answers": max_answers})
    if train_gold != "every":  # likewise the strict rule
        parts.append({"train_gold": train_gold})
    key = stable_hash(parts, length=24)
    folder = prepared_folder(name, key)

    def build(tmp: Path) -> None:
        counts = StepCounts()
        questions, split_record = parse(counts)
        gold, dense_space = map_questions(corpus, questions, mapping, search, progress)
        kept = [(q, g) for q, g in zip(questions, gold, strict=True) if all(len(rows) for rows in g)]
        for src in list(counts.steps):
            counts.add(src, "every answer has a gold passage", sum(1 for q, _ in kept if q.source == src))
        if train_gold == "two":
            kept = [relaxed for q, g in zip(questions, gold, strict=True)
                    if (relaxed := _keep_for_train(q, g, assign)) is not None]
            for src in list(counts.steps):
                counts.add(src, "… or, in train, at least two answers have one (train_gold=two)",
                           sum(1 for q, _ in kept if q.source == src))
        if max_answers is not None:
            kept = [(q, g) for q, g in kept if len(q.answers) <= max_answers]
            for src in list(counts.steps):
                counts.add(src, f"≤ {max_answers} answers (max_answers)", sum(1 for q, _ in kept if q.source == src))
        for src in list(counts.steps):
            groups = sorted({q.group for q, _ in kept if q.source == src and q.group})
            for grp in groups:
                counts.add(src, f"  of which {grp}", sum(1 for q, _ in kept if q.group == grp))
        by_split: dict[str, list[tuple[Question, list[list[int]]]]] = {"train": [], "test": []}
        for q, g in kept:
            by_split.setdefault(assign(q), []).append((q, g))
        train = by_split["train"]
        perm = seeded_split([q.qid for q, _ in train], seed, f"{name}-val")
        n_val = int(round(val_fraction * len(train)))
        val_idx = set(perm[:n_val].tolist())
        splits = {"train": [x for i, x in enumerate(train) if i not in val_idx],
                  "val": [x for i, x in enumerate(train) if i in val_idx], "test": by_split["test"]}
        splits = {k: v for k, v in splits.items() if v}
        if "test" not in splits:
            raise BenchError(f"task {name}: no test question keeps a gold passage for every answer on corpus "
                             f"{corpus_path}")
        ids = corpus.ids
        qrels = {s: [(q.qid, ids[r], f"a{ai}") for q, g in items for ai, rows in enumerate(g) for r in rows]
                 for s, items in splits.items()}
        seen: set[str] = set()
        queries = []
        for items in splits.values():
            for q, _ in items:
                if q.qid in seen:
                    raise BenchError(f"task {name}: question id {q.qid!r} occurs twice (in {q.source})")
                seen.add(q.qid)
                queries.append((q.qid, q.text))
        meta: dict[str, Any] = {
            "splits": list(splits), "steps": counts.steps,
            "split_sizes": {s: len(v) for s, v in splits.items()},
            "split": split_record | {"val": n_val}, "max_answers": max_answers,
            "gold_mapping": mapping_record(mapping, dense_space),
            "corpus": {k: v for k, v in corpus_info.items() if k != "fingerprint_info"},
            "inputs": dict(files_hash(files)),
            "answers": {q.qid: [a.aliases for a in q.answers] for items in splits.values() for q, _ in items},
        }
        if train_gold != "every":
            meta["train_gold"] = train_gold
        write_prepared(tmp, queries, qrels, meta)

    from bench.storage.cache import load_or_build

    info = {"task": name, "corpus": str(corpus_path)}
    if world is None:
        load_or_build(folder, build, lambda p: p, folder=True, info=info)
    else:
        if mapping.dense not in ("", "none") and not folder.exists():
            dense_store(corpus, mapping.dense, world)  # the slow part, shared out; rank 0 maps from the shards
        with world.rank_zero_first(f"prepare/{name}", "mapping the gold passages"):
            load_or_build(folder, build, lambda p: p, folder=True, info=info)
    data = load_prepared(folder, name, corpus, reader)
    data.info["corpus_label"] = corpus_label
    data.info["corpus_tag"] = corpus_tag or corpus_folder_tag(corpus_path, corpus.fingerprint)
    data.info["corpus"] = corpus_info
    return apply_audit(data, drop_leaked)
