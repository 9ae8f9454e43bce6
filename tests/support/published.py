"""Small files in the layouts the real tasks are published in: AmbigNQ's light files with a DPR `psgs_w100.tsv`, and
QAMPARI's question files with its chunked Wikipedia (a folder of `wikipedia_chunks_{i}.jsonl` files of
`{"id", "contents", "meta"}` lines, as its chunk_wiki.py writes them). Distractor passages come from
../shared/data/wiki-vital, so that a corpus holds more passages than the deepest default cutoff (100)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from tests.support import SHARED_DATA
from tests.support.ambignq import PASSAGES, qa

CITIES = ["Paris", "Lyon", "Marseille", "Toulouse", "Nice", "Nantes", "Lille", "Rennes", "Reims"]


def distractors(n: int) -> list[tuple[str, str, str]]:
    """(id, title, text) of n wiki-vital articles."""
    articles = json.loads((SHARED_DATA / "wiki-vital" / "summaries_en-us.json").read_bytes())
    return [(f"w{i}", rec["title"], " ".join(rec["extract"].split())) for i, rec in
            enumerate(list(articles.values())[:n])]


def write_ambigqa(root: Path) -> None:
    """ambignq/ with train and dev files in AmbigNQ's light schema, and psgs_w100.tsv in DPR's layout (header, csv
    quoting): every question's answers are in the passages, so both halves of dev keep questions."""
    pairs = [("France", "Germany", "won the World Cup in 2018 and 2014"),
             ("London", "Rio de Janeiro", "hosted the Summer Olympics in 2012 and 2016"),
             ("France", "Croatia", "reached the World Cup final in 2018")]
    train = [qa(f"t{i}", f"Who {what}? ({i})", [a], [b]) for i, (a, b, what) in enumerate(pairs * 3)]
    dev = [qa(f"d{i}", f"Which {what}? (dev {i})", [a], [b]) for i, (a, b, what) in enumerate(pairs * 4)]
    (root / "ambignq").mkdir()
    (root / "ambignq" / "train_light.json").write_text(json.dumps(train), encoding="utf-8")
    (root / "ambignq" / "dev_light.json").write_text(json.dumps(dev), encoding="utf-8")
    with open(root / "psgs_w100.tsv", "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, delimiter="\t", lineterminator="\n")
        writer.writerow(["id", "text", "title"])
        for pid, title, text in [*PASSAGES, *distractors(120)]:
            writer.writerow([pid, text, title])


def qampari_question(qid: str, n: int, first: int) -> dict:
    cities = (CITIES * 2)[first:first + n]
    answers = [{"answer_text": c, "aliases": [c.upper()], "aid": f"{qid}__{i}",
                "proof": [{"proof_text": f"{c} is a city in France with a football club in Ligue 1",
                           "found_in_url": f"https://en.wikipedia.org/wiki/{c}", "pid": f"{qid}__{i}__0"}]}
               for i, c in enumerate(cities)]
    return {"qid": qid, "question_text": f"Which French cities have a Ligue 1 club? ({qid})", "answer_list": answers}


def write_qampari(root: Path) -> None:
    """qampari/ with train and dev files in QAMPARI's schema, and wikipedia_chunks/ as chunk_wiki.py writes it: lines
    `{"id": "<page_id>__<n>", "contents": "<title> <text>", "meta": {...}}` spread over several numbered files."""
    (root / "qampari").mkdir()
    train = [qampari_question(f"tr{i}", 5 + i % 4, i) for i in range(6)]
    dev = [qampari_question(f"dv{i}", 5 + i % 4, i + 2) for i in range(4)]
    for name, rows in (("train_data.jsonl", train), ("dev_data.jsonl", dev)):
        (root / "qampari" / name).write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    pages = [(str(1000 + i), c, f"{c} is a city in France with a football club in Ligue 1.")
             for i, c in enumerate(CITIES)]
    pages += [(str(5000 + i), title, text) for i, (_, title, text) in enumerate(distractors(120))]
    folder = root / "wikipedia_chunks"
    folder.mkdir()
    files = [open(folder / f"wikipedia_chunks_{i}.jsonl", "w", encoding="utf-8") for i in (0, 1, 2, 10)]
    for k, (page, title, text) in enumerate(pages):
        meta = {"revid": "1", "url": f"https://en.wikipedia.org/wiki?curid={page}", "title": title,
                "file_path": "wiki_00", "page_id": page, "content": text, "chunk_id": f"{page}__0"}
        files[k % len(files)].write(json.dumps({"id": f"{page}__0", "contents": f"{title} {text}", "meta": meta})
                                    + "\n")
    for fh in files:
        fh.close()
