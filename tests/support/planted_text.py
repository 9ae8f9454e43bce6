"""A planted text task of real passages: each question asks for two kinds of thing, each answered by a cluster of
passages, so one query vector cannot rank both clusters first at once.

The clusters are wiki-vital articles that share a short description ("Country in West Africa", "Music genre", …):
passages about the same kind of thing sit close together in an embedding space, and two kinds sit apart. A question
names two kinds in one of a few wordings; its two answer clusters are the articles of each kind (any one of them
answers). One vector between the two clusters ranks the articles of one cluster or the other first, so it rarely has
one of each in its top 2; two vectors, one per cluster, do. The remaining articles are distractors.

Written in the BEIR layout with the `cluster` column (tasks/beir.py), one split: `-t train_fraction=` holds out a
seeded share of the *pairs* of kinds for testing, never seen together in training.
"""

from __future__ import annotations

import itertools
import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from tests.support import SHARED_DATA

WORDINGS = ("{a} and {b}", "{a} or {b}?", "Which articles describe a {a} or a {b}?", "both a {a} and a {b}")


def make_planted_text(folder: Path, kinds: int = 30, per_kind: int = 5, distractors: int = 300,
                      seed: int = 0) -> Path:
    """The task folder: `kinds` descriptions of at least `per_kind` articles each (their first `per_kind` articles
    are the clusters), `distractors` other articles, and one question per pair of kinds."""
    articles = list(json.loads((SHARED_DATA / "wiki-vital" / "summaries_en-us.json").read_bytes()).items())
    by_kind: dict[str, list[str]] = defaultdict(list)
    for key, rec in articles:
        by_kind[(rec.get("description") or "").strip()].append(key)
    eligible = sorted(k for k, keys in by_kind.items() if k and len(keys) >= per_kind)
    rng = np.random.default_rng(seed)
    chosen = sorted(rng.choice(eligible, size=kinds, replace=False).tolist())
    members = {k: by_kind[k][:per_kind] for k in chosen}
    in_clusters = {key for keys in members.values() for key in keys}
    chosen_set = set(chosen)
    others = [key for key, rec in articles if key not in in_clusters
              and (rec.get("description") or "").strip() not in chosen_set]
    picked = [others[i] for i in sorted(rng.choice(len(others), size=distractors, replace=False).tolist())]
    records = dict(articles)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "qrels").mkdir(exist_ok=True)
    with open(folder / "corpus.jsonl", "w", encoding="utf-8") as fh:
        for key in sorted(in_clusters) + picked:
            rec = records[key]
            fh.write(json.dumps({"_id": key, "title": rec.get("title") or "", "text": rec["extract"]},
                                ensure_ascii=False) + "\n")
    with open(folder / "queries.jsonl", "w", encoding="utf-8") as q, \
            open(folder / "qrels" / "test.tsv", "w", encoding="utf-8") as r:
        r.write("query-id\tcorpus-id\tscore\tcluster\n")
        for n, (a, b) in enumerate(itertools.combinations(chosen, 2)):
            if rng.random() < 0.5:
                a, b = b, a
            text = WORDINGS[n % len(WORDINGS)].format(a=a.lower(), b=b.lower())
            q.write(json.dumps({"_id": f"p{n}", "text": text}, ensure_ascii=False) + "\n")
            for kind in (a, b):
                for key in members[kind]:
                    r.write(f"p{n}\t{key}\t1\t{kind}\n")
    return folder
