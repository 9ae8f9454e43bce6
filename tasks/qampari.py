"""QAMPARI (Amouyal et al. 2023) as a multi-target task: list questions with many answers over a passage corpus.

Input: the QAMPARI JSONL files (`train_data.jsonl`, `dev_data.jsonl`, optionally `test_data.jsonl`; download
`qampari.zip` from https://github.com/samsam3232/qampari), one question per line in the published schema
`{"qid", "question_text", "answer_list": [{"answer_text", "aliases", "aid", "proof": [{"proof_text", "found_in_url",
"pid"}]}]}`, and a passage corpus (`-t corpus=PATH`, required): QAMPARI's chunked Wikipedia, a separate download
(`chunked_wikipedia.tar.gz`, a folder of `wikipedia_chunks_{i}.jsonl` files of `{"id", "contents", "meta"}` lines,
bench/data/corpus.py), whose passages begin with their title; or `-t corpus=wiki-vital`, the offline stand-in.

Procedure (docs/architecture.md §5), counted step by step (`bench data info qampari`):
1. questions with `min_answers`..`max_answers` answers (5–8); a question with an empty answer list is skipped and
   counted;
2. gold passages of an answer: BM25 top-`depth` (500) candidates of each of its proof snippets, kept when the passage
   contains the answer text or an alias as a normalised whole-token substring (tasks/multianswer.py); a question is
   kept only when every answer has a gold passage;
3. splits: train = the train file (val = 10% of it, seeded), test = the dev file — the paper's test set is the
   5–8-answer subset of QAMPARI dev (531 questions with the paper's corpus).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.data.paths import resolve_data_dir
from bench.data.task import Task, TaskData
from bench.errors import BenchError
from bench.registry import register_task
from tasks.ambigqa import NQ_INSTRUCTION, _field, default_corpus
from tasks.multianswer import Answer, MappingParams, Question, StepCounts, jsonl_records, prepare_task


@dataclass(frozen=True)
class QampariParams:
    data_dir: str | None = None  # folder with train_data.jsonl and dev_data.jsonl
    corpus: str | None = None  # QAMPARI's chunked Wikipedia (folder of wikipedia_chunks_*.jsonl, a glob, a file),
    # any JSONL / TSV passage file, or "wiki-vital" (the offline stand-in); required
    min_answers: int = 5
    max_answers: int = 8
    depth: int = 500
    dense: str = "none"  # the paper's QAMPARI mapping is BM25 on the proof snippets only
    split_seed: int = 0
    val_fraction: float = 0.1
    m_pred: int = 5  # vectors AMER emits per query (paper: 5); recorded in the task info
    drop_leaked: bool = False
    corpus_full_hash: bool = False


FILES = {"train": "train_data.jsonl", "dev": "dev_data.jsonl"}


def parse_qampari(path: Path, source: str, counts: StepCounts, lo: int, hi: int) -> list[Question]:
    """The questions of one QAMPARI JSONL file with lo..hi answers, steps counted."""
    total = empty = 0
    in_range: list[Question] = []
    for line, rec in jsonl_records(path):
        total += 1
        where = f"{path}, line {line}"
        qid = str(_field(rec, "qid", where, (str, int)))
        text = _field(rec, "question_text", where, str)
        answer_list = _field(rec, "answer_list", where, list)
        if not answer_list:
            empty += 1
            continue
        answers: list[Answer] = []
        for j, a in enumerate(answer_list):
            awhere = f"{where} (question {qid}), answer_list[{j}]"
            answer_text = _field(a, "answer_text", awhere, str)
            aliases = a.get("aliases") or []
            if not isinstance(aliases, list) or not all(isinstance(x, str) for x in aliases):
                raise BenchError(f"{awhere}: field 'aliases' must be a list of strings")
            proofs = a.get("proof") or []
            if not isinstance(proofs, list):
                raise BenchError(f"{awhere}: field 'proof' must be a list")
            texts = []
            for k, pr in enumerate(proofs):
                texts.append(_field(pr, "proof_text", f"{awhere}, proof[{k}]", str))
            answers.append(Answer([answer_text, *aliases], [t for t in texts if t.strip()]))
        if lo <= len(answers) <= hi:
            in_range.append(Question(qid, text, source, answers))
    counts.add(source, "questions", total)
    counts.add(source, "non-empty answer list", total - empty)
    counts.add(source, f"{lo}–{hi} answers", len(in_range))
    return in_range


@register_task(
    "qampari",
    description="QAMPARI list questions with 5-8 answers over a passage corpus (-t data_dir=PATH -t corpus=PATH, "
                "required)",
    kind="multi-answer",
    params=QampariParams,
)
class QampariTask(Task):
    default_ks = (10, 100)

    def load(self) -> TaskData:
        p: QampariParams = self.params
        if p.min_answers < 1 or p.max_answers < p.min_answers:
            raise BenchError(f"task {self.name}: need 1 ≤ min_answers ≤ max_answers, got {p.min_answers}, "
                             f"{p.max_answers}")
        folder = resolve_data_dir(p.data_dir, "qampari", self.name)
        files = {s: folder / f for s, f in FILES.items()}
        for path in files.values():
            if not path.is_file():
                raise BenchError(f"{folder}: no {path.name} (QAMPARI release: train_data.jsonl, dev_data.jsonl)")
        corpus_path, label, tag = default_corpus(p.corpus, self.name)

        def parse(counts: StepCounts) -> tuple[list[Question], dict[str, Any]]:
            qs = parse_qampari(files["train"], "train", counts, p.min_answers, p.max_answers)
            qs += parse_qampari(files["dev"], "dev", counts, p.min_answers, p.max_answers)
            return qs, {"method": "train file → train (val_fraction of it → val, seeded); dev file → test",
                        "seed": p.split_seed, "val_fraction": p.val_fraction}

        data = prepare_task(
            self.name, parse, lambda q: "test" if q.source == "dev" else "train", files=list(files.values()),
            corpus_path=corpus_path, corpus_label=label, mapping=MappingParams(depth=p.depth, dense=p.dense),
            seed=p.split_seed, val_fraction=p.val_fraction, drop_leaked=p.drop_leaked,
            force_hash=p.corpus_full_hash, search="proof", corpus_tag=tag,
        )
        data.info["m_pred"] = p.m_pred  # AMER's vectors per query unless -r m_pred says otherwise
        data.info["paper_gold_similarity"] = {"within": 0.86, "random": 0.74}  # the paper's appendix, this task
        data.info["instruction"] = NQ_INSTRUCTION  # the query instruction of instruction-following retrievers
        return data
