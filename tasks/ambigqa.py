"""AmbigQA (Min et al. 2020) as a multi-target task: questions with several disambiguated answers over a passage corpus.

Input: the AmbigNQ files (light `train_light.json` / `dev_light.json`, or full `train.json` / `dev.json`; both are a
JSON array of `{"id", "question", "annotations": [{"type": "singleAnswer" | "multipleQAs", "qaPairs": [{"question",
"answer": [aliases]}]}]}`), download: https://github.com/shmsw25/AmbigQA (nlp.cs.washington.edu/ambigqa/data/), and a
passage corpus (`-t corpus=PATH`: DPR's psgs_w100.tsv, a JSONL file, a folder or glob of them; or
`-t corpus=wiki-vital`: ../shared/data/wiki-vital, an offline stand-in labelled as such, the default with the shared
AmbigNQ files only).

Procedure (docs/architecture.md §5), counted step by step in the task info (`bench data info ambigqa`):
1. questions with a `multipleQAs` annotation (the first one when annotators gave several); a question whose qaPair
   has an empty answer list is skipped and counted;
2. one answer cluster per qaPair, its aliases = that pair's answer strings; qaPairs with the same normalised alias set
   are merged; questions left with fewer than 2 distinct answers are dropped;
3. gold passages: among the top-`depth` (500) candidates of BM25 and of the `dense` retriever (minilm) for the
   question, those containing an alias as a normalised whole-token substring (tasks/multianswer.py); a question is
   kept only when every answer has a gold passage;
4. splits as the paper: train = train file + one half of dev, test = the other half (a seeded permutation of the dev
   file's questions, drawn before any filtering, so it does not depend on the corpus), val = 10% of train (seeded).
   `nq_open=true` adds NQ-open's questions with ≥ 2 distinct answers (one cluster per answer, forms of one answer
   merged) to train, through the same gold mapping and keep rule.
The leak audit (bench/data/audit.py) runs on every load; `drop_leaked=true` removes the leaked test questions.

The reference implementation's choices, one parameter each (docs/fidelity.md): `matcher=dpr` finds aliases with DPR's
has_answer (punctuation and articles kept) instead of our normalisation; `max_answers=5` keeps, in train and test, only
the questions with at most 5 answers once every answer has a gold passage (with the ≥ 2 above: its 2–5).
More training questions: `train_gold=two` keeps a train (and val) question when at least two of its answers have a
gold passage, with the others dropped; the test split keeps the strict rule, so test results are unchanged.
The task declares the query instruction of mteb's NQ task (`info["instruction"]`), which instruction-following
retrievers (nv-embed) put before the question.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.data.answers import contains_alias, matcher, normalise
from bench.data.corpus import corpus_files
from bench.data.paths import resolve_data_dir, shared_data_candidates
from bench.data.task import Task, TaskData
from bench.errors import BenchError
from bench.registry import register_task
from bench.storage.cache import file_sha256
from tasks.multianswer import (
    TRAIN_GOLD_RULES,
    Answer,
    MappingParams,
    Question,
    StepCounts,
    jsonl_records,
    prepare_task,
    read_json_array,
    seeded_split,
)


@dataclass(frozen=True)
class AmbigQAParams:
    data_dir: str | None = None  # AmbigNQ folder; default ../shared/data/ambignq
    corpus: str | None = None  # passage corpus (file, folder of *.jsonl, glob) or "wiki-vital" (the offline default
    # with the shared AmbigNQ files; with your own data_dir the corpus must be named)
    depth: int = 500  # candidates per retriever searched for gold passages
    dense: str = "minilm"  # dense retriever of the second candidate list ("none": BM25 only)
    split_seed: int = 0
    val_fraction: float = 0.1
    m_pred: int = 2  # vectors AMER emits per query (paper: 2); recorded in the task info
    drop_leaked: bool = False  # drop test questions the audit finds leaked from train
    corpus_full_hash: bool = False
    nq_open: bool = False  # add NQ-open's multi-answer questions to train (from nq_open_dir)
    nq_open_dir: str | None = None  # folder of NQ-open JSONL files; default ../shared/data/nq-open
    matcher: str = "harness"  # harness (our normalisation) | dpr (DPR's has_answer, as the reference)
    max_answers: int | None = None  # keep questions with at most this many answers (the reference: 5); none: all
    train_gold: str = "every"  # train questions kept when every answer has gold | two: at least two answers have
    # (the answers without gold dropped); the test split always needs every answer

    def __post_init__(self) -> None:
        matcher(self.matcher)  # ValueError naming the matchers
        if self.train_gold not in TRAIN_GOLD_RULES:
            raise ValueError(f"train_gold must be one of {', '.join(TRAIN_GOLD_RULES)}, got {self.train_gold!r}")
        if self.max_answers is not None and self.max_answers < 2:
            raise ValueError(f"max_answers must be ≥ 2 (a kept question has at least 2 answers), got "
                             f"{self.max_answers}")


# mteb's query instruction for NQ, the closest mteb task to open-domain questions over Wikipedia
NQ_INSTRUCTION = "Given a question, retrieve Wikipedia passages that answer the question"


def find_files(folder: Path) -> dict[str, Path]:
    for train, dev in (("train_light.json", "dev_light.json"), ("train.json", "dev.json")):
        if (folder / train).is_file() and (folder / dev).is_file():
            return {"train": folder / train, "dev": folder / dev}
    raise BenchError(f"{folder}: no AmbigNQ files (train_light.json + dev_light.json, or train.json + dev.json)")


OFFLINE_CORPUS = "wiki-vital"
OFFLINE_LABEL = ("wiki-vital: 10,033 Wikipedia lead summaries, an offline stand-in — not comparable to the paper's "
                 "25M-passage Wikipedia")


def default_corpus(given: str | None, task: str, required: bool = True) -> tuple[str, str, str]:
    """The corpus path, its label (results on wiki-vital are not comparable to the paper's) and its tag in result
    folders ('' for a user's corpus: the task derives it from the corpus's name and fingerprint).

    `-t corpus=wiki-vital` names the offline stand-in. Without `-t corpus=` a task whose real corpus is the user's
    (`required`) refuses to run, so that no run silently measures the stand-in."""
    offline = [folder / "summaries_en-us.json" for folder in shared_data_candidates("wiki-vital")]
    if given and given.strip().lower() != OFFLINE_CORPUS:
        p, files = corpus_files(given)
        if files is None and not p.is_file():
            raise BenchError(f"task {task}: corpus {str(p)!r} is not a file, a folder of *.jsonl files or a glob")
        if files is None and any(p.resolve() == o.resolve() for o in offline if o.is_file()):
            return str(p.resolve()), OFFLINE_LABEL, OFFLINE_CORPUS  # the stand-in, named by its path
        return str(p.resolve()) if files is None else str(p), f"user corpus {p.name}", ""
    if not given and required:
        raise BenchError(
            f"task {task}: name its corpus with -t corpus=PATH (`--corpus PATH` for `bench data`): DPR's "
            f"psgs_w100.tsv, QAMPARI's folder of wikipedia_chunks_*.jsonl (or a glob of them), or any JSONL / TSV "
            f"passage file; or -t corpus={OFFLINE_CORPUS} for the 10,033-passage offline stand-in, whose results are "
            f"not comparable to the paper's")
    for path in offline:
        if path.is_file():
            return str(path.resolve()), OFFLINE_LABEL, OFFLINE_CORPUS
    raise BenchError(f"task {task}: the offline corpus {OFFLINE_CORPUS} is not beside the checkout "
                     f"(../shared/data/wiki-vital); pass -t corpus=PATH")


def _field(obj: Any, name: str, where: str, kind: type | tuple[type, ...]) -> Any:
    if not isinstance(obj, dict) or name not in obj:
        raise BenchError(f"{where}: missing field {name!r}")
    value = obj[name]
    if not isinstance(value, kind) or isinstance(value, bool):
        kinds = kind if isinstance(kind, tuple) else (kind,)
        raise BenchError(f"{where}: field {name!r} must be {' or '.join(k.__name__ for k in kinds)}, got "
                         f"{type(value).__name__}")
    return value


def parse_ambignq(path: Path, source: str, counts: StepCounts) -> list[Question]:
    """The multi-answer questions of one AmbigNQ file, with the filtering steps counted."""
    records = read_json_array(path)
    counts.add(source, "questions", len(records))
    multi = skipped_empty = 0
    out: list[Question] = []
    few = 0
    for line, rec in records:
        where = f"{path}, line {line}"
        if not isinstance(rec, dict):
            raise BenchError(f"{where}: expected a question object, got {type(rec).__name__}")
        qid = str(_field(rec, "id", where, (str, int)))
        text = _field(rec, "question", where, str)
        annotations = _field(rec, "annotations", where, list)
        ann = next((a for a in annotations if isinstance(a, dict) and a.get("type") == "multipleQAs"), None)
        for a in annotations:
            if not isinstance(a, dict) or not isinstance(a.get("type"), str):
                raise BenchError(f"{where} (question {qid}): field 'annotations': each needs a string 'type'")
        if ann is None:
            continue
        multi += 1
        pairs = _field(ann, "qaPairs", f"{where} (question {qid}), annotation multipleQAs", list)
        answers: list[Answer] = []
        seen: set[frozenset[str]] = set()
        empty = False
        alias_lists = []
        for j, pair in enumerate(pairs):
            pwhere = f"{where} (question {qid}), qaPairs[{j}]"
            aliases = _field(pair, "answer", pwhere, list)
            if not all(isinstance(a, str) for a in aliases):
                raise BenchError(f"{pwhere}: field 'answer' must be a list of strings")
            alias_lists.append(aliases)
        for aliases in alias_lists:
            ans = Answer([a for a in aliases if a.strip()])
            norm = frozenset(ans.normalised())
            if not norm:
                empty = True
                break
            if norm not in seen:
                seen.add(norm)
                answers.append(ans)
        if empty or not pairs:
            skipped_empty += 1
            continue
        if len(answers) < 2:
            few += 1
            continue
        out.append(Question(qid, text, source, answers))
    counts.add(source, "multi-answer (multipleQAs)", multi)
    counts.add(source, "no answer with an empty alias list", multi - skipped_empty)
    counts.add(source, "≥ 2 distinct answers", len(out))
    return out


def parse_nq_open(paths: list[Path], counts: StepCounts) -> list[Question]:
    """NQ-open questions (`{"question", "answer": [...]}`) with ≥ 2 distinct answers. NQ-open lists alternative
    forms of one answer too ("14 December 1972 UTC", "December 1972"): answers whose normalised forms contain one
    another are merged into one cluster, the rest are distinct answers."""
    total = 0
    out: list[Question] = []
    for path in paths:
        for line, rec in jsonl_records(path):
            total += 1
            where = f"{path}, line {line}"
            text = _field(rec, "question", where, str)
            answers = _field(rec, "answer", where, list)
            if not all(isinstance(a, str) for a in answers):
                raise BenchError(f"{where}: field 'answer' must be a list of strings")
            groups: list[list[str]] = []
            for a in answers:
                n = normalise(a)
                if not n:
                    continue
                for g in groups:
                    if any(contains_alias(n, normalise(x)) or contains_alias(normalise(x), n) for x in g):
                        g.append(a)
                        break
                else:
                    groups.append([a])
            if len(groups) >= 2:
                out.append(Question(f"nq-open:{path.stem}:{line}", text, "nq-open", [Answer(g) for g in groups]))
    counts.add("nq-open", "questions", total)
    counts.add("nq-open", "≥ 2 distinct answers", len(out))
    return out


@register_task(
    "ambigqa",
    description="AmbigQA multi-answer questions over a passage corpus (-t corpus=PATH|wiki-vital; the shared "
                "AmbigNQ files default to the offline wiki-vital)",
    kind="multi-answer",
    params=AmbigQAParams,
)
class AmbigQATask(Task):
    default_ks = (10, 100)

    def load(self) -> TaskData:
        p: AmbigQAParams = self.params
        folder = resolve_data_dir(p.data_dir, "ambignq", self.name)
        files = find_files(folder)
        # with the user's own AmbigNQ files the corpus must be named too; the offline default pairs the shared
        # AmbigNQ files with the wiki-vital stand-in
        corpus_path, label, tag = default_corpus(p.corpus, self.name, required=p.data_dir is not None)
        nq_files: list[Path] = []
        if p.nq_open:
            nq_files = sorted(resolve_data_dir(p.nq_open_dir, "nq-open", self.name).glob("*.jsonl"))
            if not nq_files:
                raise BenchError(f"task {self.name}: nq_open=true, but no NQ-open *.jsonl files were found")

        def parse(counts: StepCounts) -> tuple[list[Question], dict[str, Any]]:
            train = parse_ambignq(files["train"], "train", counts)
            dev_records = read_json_array(files["dev"])
            dev_ids = [str(r.get("id")) if isinstance(r, dict) else "" for _, r in dev_records]
            dev = parse_ambignq(files["dev"], "dev", counts)
            perm = seeded_split(dev_ids, p.split_seed, "ambigqa-dev-halves")
            half = set(np.asarray(dev_ids, dtype=object)[perm[: len(dev_ids) // 2]].tolist())
            for q in dev:
                q.group = "dev half → train" if q.qid in half else "dev half → test"
            record = {"method": "paper: train = train file + half of dev (seeded permutation of the dev file), "
                                "test = the other half, val = val_fraction of train (seeded)",
                      "seed": p.split_seed, "val_fraction": p.val_fraction,
                      "dev_train_half": len(half), "dev_test_half": len(dev_ids) - len(half)}
            extra: list[Question] = []
            if p.nq_open:
                extra = parse_nq_open(nq_files, counts)
                record["nq_open"] = "NQ-open multi-answer questions added to train"
            return train + dev + extra, record

        def assign(q: Question) -> str:
            return "test" if q.group == "dev half → test" else "train"

        data = prepare_task(
            self.name, parse, assign, files=list(files.values()), corpus_path=corpus_path, corpus_label=label,
            mapping=MappingParams(depth=p.depth, dense=p.dense, matcher=p.matcher), seed=p.split_seed,
            val_fraction=p.val_fraction, drop_leaked=p.drop_leaked, force_hash=p.corpus_full_hash, search="question",
            key_extra={"nq_open": [(f.name, file_sha256(f)) for f in nq_files]}, corpus_tag=tag,
            max_answers=p.max_answers, train_gold=p.train_gold,
        )
        data.info["m_pred"] = p.m_pred  # AMER's vectors per query unless -r m_pred says otherwise
        data.info["paper_gold_similarity"] = {"within": 0.90, "random": 0.77}  # the paper's appendix, this task
        data.info["instruction"] = NQ_INSTRUCTION
        return data
