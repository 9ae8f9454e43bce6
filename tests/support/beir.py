"""A three-document BEIR folder (corpus, queries, qrels as JSONL or TSV) for the tasks and retrievers that read
one."""

from __future__ import annotations

import json
from pathlib import Path


def make_beir(folder: Path, qrels: list[tuple[str, str, int]] | None = None, tsv: bool = False) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    docs = [("d0", "Alpha", "first"), ("d1", "", "second"), ("d2", "Gamma", "third")]
    (folder / "corpus.jsonl").write_text(
        "".join(json.dumps({"_id": i, "title": t, "text": x}) + "\n" for i, t, x in docs), encoding="utf-8")
    queries = [("q0", "zero?"), ("q1", "one?"), ("q2", "two?")]
    (folder / "queries.jsonl").write_text(
        "".join(json.dumps({"_id": i, "text": t}) + "\n" for i, t in queries), encoding="utf-8")
    qrels = qrels if qrels is not None else [("q0", "d2", 1), ("q0", "d0", 1), ("q2", "d1", 2), ("q1", "d0", 0)]
    if tsv:
        (folder / "qrels").mkdir(exist_ok=True)
        (folder / "qrels" / "test.tsv").write_text(
            "query-id\tcorpus-id\tscore\n" + "".join(f"{q}\t{d}\t{s}\n" for q, d, s in qrels), encoding="utf-8")
    else:
        (folder / "qrels.jsonl").write_text(
            "".join(json.dumps({"query-id": q, "corpus-id": d, "score": s}) + "\n" for q, d, s in qrels),
            encoding="utf-8")
    return folder
