"""An AmbigNQ fixture in the published schema (`train_light.json`, `dev_light.json`) with a DPR-style passage TSV:
small enough to read, with every case of the keep rule (single answers, an answer without gold, empty answer lists,
answers equal after normalisation)."""

from __future__ import annotations

import json
from pathlib import Path

PASSAGES = [
    ("p0", "France national football team", "France won the 2018 FIFA World Cup in Russia, beating Croatia."),
    ("p1", "Germany national football team", "Germany won the 2014 FIFA World Cup in Brazil."),
    ("p2", "2012 Summer Olympics", "The 2012 Summer Olympics were held in London."),
    ("p3", "2016 Summer Olympics", "The 2016 Summer Olympics were held in Rio de Janeiro, Brazil."),
    ("p4", "Football", "Association football is a team sport played with a ball."),
    ("p5", "Croatia", "Croatia reached the final of the World Cup in 2018."),
    ("7", "Moon landing", "Apollo 17 was the last crewed Moon landing, in December 1972."),
]


def qa(qid: str, question: str, *pairs: list[str], single: bool = False) -> dict:
    qa_pairs = [{"question": f"{question} ({i})", "answer": p} for i, p in enumerate(pairs)]
    anns = [{"type": "singleAnswer", "answer": pairs[0]}] if single else [{"type": "multipleQAs", "qaPairs": qa_pairs}]
    return {"id": qid, "question": question, "annotations": anns}


def write_fixture(tmp: Path, train: list[dict], dev: list[dict]) -> tuple[Path, Path]:
    folder = tmp / "ambignq"
    folder.mkdir()
    (folder / "train_light.json").write_text(json.dumps(train, indent=1))
    (folder / "dev_light.json").write_text(json.dumps(dev, indent=1))
    corpus = tmp / "psgs.tsv"
    corpus.write_text("".join(f"{i}\t{t}\t{ti}\n" for i, ti, t in PASSAGES), encoding="utf-8")
    return folder, corpus


TRAIN = [
    qa("t1", "Who won the World Cup in 2018 and 2014?", ["France", "les Bleus"], ["Germany"]),
    qa("t2", "Where were the Summer Olympics held in 2012 and 2016?", ["London"], ["Rio de Janeiro", "Rio"]),
    qa("t3", "Who won the World Cup final?", ["France"], ["Atlantis"]),  # one answer has no gold: dropped
    qa("t4", "Who played in the World Cup final 2018?", ["France"], []),  # an empty answer list: skipped
    qa("t5", "When was the last Moon landing?", ["December 1972"], single=True),  # single answer: not multi
    qa("t6", "Who won the World Cup 2018?", ["France"], ["france!"]),  # one distinct answer after normalising
]
DEV = [
    qa("d1", "Which teams reached the World Cup final in 2018?", ["France"], ["Croatia"]),
    qa("d2", "Where were the 2012 and 2016 Summer Olympics?", ["London"], ["Rio de Janeiro"]),
]
