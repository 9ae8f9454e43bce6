"""How many gold passages an AmbigQA question has, and why: per matcher, answer cap and candidate depth.

    python benchmarks/ambigqa_gold.py [-t key=value ...] [--json]

Loads `ambigqa` with the given task parameters (default corpus: the offline wiki-vital stand-in; the first run maps
the gold passages, later runs read the cached task) and prints, per split, the questions, the gold passages per
question (mean, median, max) and per answer, and where they come from: each answer is classed by its shortest
alias after our normalisation (bench/data/answers.py) — `number` (digits only: years, counts), `one word`,
`two or more words` — and the table gives each class's answers, gold passages per answer and share of all
(answer, passage) pairs. A short alias such as a year is found in many passages of the top-500 candidates.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

import numpy as np

from bench.data.answers import normalise
from bench.data.task import build_task

CLASSES = ("number", "one word", "two or more words")


def answer_class(aliases: list[str]) -> str:
    """The class of an answer by its shortest non-empty normalised alias."""
    forms = sorted((f for f in (normalise(a) for a in aliases) if f), key=len)
    shortest = forms[0] if forms else ""
    if shortest.replace(" ", "").isdigit():
        return "number"
    return "one word" if len(shortest.split()) <= 1 else "two or more words"


def measure(params: list[str]) -> dict[str, Any]:
    data = build_task("ambigqa", params).load()
    meta = json.loads((Path(data.info["prepared"]) / "meta.json").read_text(encoding="utf-8"))
    aliases = meta["answers"]  # qid → the aliases of each answer cluster, in cluster order
    out: dict[str, Any] = {"params": params, "steps": data.info["steps"], "gold_mapping": data.info["gold_mapping"],
                           "splits": {}}
    for name, split in data.splits.items():
        t = split.targets
        per_q = np.bincount(t.query, minlength=len(split))
        per_answer = np.zeros(int(t.n_clusters.sum()), dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(t.n_clusters)[:-1]])
        np.add.at(per_answer, offsets[t.query] + t.cluster, 1)
        classes = [answer_class(aliases[qid][c]) for qid, m in zip(split.query_ids, t.n_clusters.tolist(),
                                                                    strict=True) for c in range(m)]
        total = int(per_answer.sum())
        by_class = {}
        for cls in CLASSES:
            sel = np.array([c == cls for c in classes])
            n = int(sel.sum())
            by_class[cls] = {"answers": n, "gold_per_answer": round(float(per_answer[sel].mean()), 1) if n else None,
                             "share_of_pairs": round(float(per_answer[sel].sum()) / total, 3) if total else None}
        out["splits"][name] = {
            "questions": len(split), "answers_per_question": round(float(t.n_clusters.mean()), 2),
            "gold_per_question_mean": round(float(per_q.mean()), 1),
            "gold_per_question_median": float(statistics.median(per_q.tolist())),
            "gold_per_question_max": int(per_q.max()),
            "gold_per_answer_mean": round(float(per_answer.mean()), 1),
            "gold_per_answer_median": float(statistics.median(per_answer.tolist())),
            "by_class": by_class,
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-t", dest="params", action="append", default=[], help="task parameter key=value (repeatable)")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args()
    result = measure(args.params)
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
        return
    print(f"ambigqa {' '.join(args.params) or '(defaults)'}")
    for src, steps in result["steps"].items():
        print(f"  {src}: " + "; ".join(f"{k.strip()} {v:,}" for k, v in steps.items()))
    for name, s in result["splits"].items():
        print(f"  {name}: {s['questions']} questions, {s['answers_per_question']} answers each; gold passages per "
              f"question mean {s['gold_per_question_mean']}, median {s['gold_per_question_median']}, max "
              f"{s['gold_per_question_max']}; per answer mean {s['gold_per_answer_mean']}, median "
              f"{s['gold_per_answer_median']}")
        for cls, c in s["by_class"].items():
            print(f"    {cls}: {c['answers']} answers, {c['gold_per_answer']} gold each, "
                  f"{c['share_of_pairs']} of the pairs")


if __name__ == "__main__":
    main()
