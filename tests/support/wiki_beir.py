"""A BEIR folder of real text from ../shared/data/wiki-vital: the first `n_docs` articles as passages (`title`,
`extract`), and as queries the short descriptions of `n_queries` of them (seeded), each relevant to its own article."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from tests.support import SHARED_DATA


def make_wiki_beir(folder: Path, n_docs: int, n_queries: int, seed: int = 0) -> Path:
    articles = json.loads((SHARED_DATA / "wiki-vital" / "summaries_en-us.json").read_bytes())
    docs = [(key, rec.get("title") or "", rec["extract"]) for key, rec in list(articles.items())[:n_docs]]
    described = [i for i, (key, _, _) in enumerate(docs) if (articles[key].get("description") or "").strip()]
    picked = np.sort(np.random.default_rng(seed).choice(described, size=min(n_queries, len(described)),
                                                        replace=False))
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "corpus.jsonl", "w", encoding="utf-8") as fh:
        for key, title, text in docs:
            fh.write(json.dumps({"_id": key, "title": title, "text": text}, ensure_ascii=False) + "\n")
    with open(folder / "queries.jsonl", "w", encoding="utf-8") as fh:
        for i in picked.tolist():
            key = docs[i][0]
            fh.write(json.dumps({"_id": f"q{i}", "text": articles[key]["description"]}, ensure_ascii=False) + "\n")
    with open(folder / "qrels.jsonl", "w", encoding="utf-8") as fh:
        for i in picked.tolist():
            fh.write(json.dumps({"query-id": f"q{i}", "corpus-id": docs[i][0], "score": 1}) + "\n")
    return folder
