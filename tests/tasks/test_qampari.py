"""tasks/qampari.py on fixtures in QAMPARI's published JSONL schema."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.data.task import build_task
from bench.errors import BenchError

CITIES = ["Paris", "Lyon", "Marseille", "Toulouse", "Nice", "Nantes", "Lille", "Rennes", "Reims"]


def passages() -> list[tuple[str, str, str]]:
    """One passage per city (beginning with its title, like the paper's), plus distractors."""
    out = [(str(100 + i), c, f"{c}. {c} is a city in France with a football club in Ligue 1.")
           for i, c in enumerate(CITIES)]
    out.append(("900", "Ligue 1", "Ligue 1 is the top French football league."))
    out.append(("901", "Berlin", "Berlin. Berlin is the capital of Germany."))
    return out


def question(qid: str, n: int, missing_proof: bool = False) -> dict:
    answers = []
    for i, c in enumerate(CITIES[:n]):
        proof = [] if (missing_proof and i == 0) else [
            {"proof_text": f"{c} is a city in France with a football club", "found_in_url": f"https://en.wikipedia.org/wiki/{c}",
             "pid": f"{c}__1"}]
        answers.append({"answer_text": c, "aliases": [c.upper()], "aid": f"{qid}__{i}", "proof": proof})
    return {"qid": qid, "question_text": f"Which French cities have a Ligue 1 club? ({qid})", "answer_list": answers}


def write_fixture(tmp: Path, train: list[dict], dev: list[dict]) -> tuple[Path, Path]:
    folder = tmp / "qampari"
    folder.mkdir()
    for name, rows in (("train_data.jsonl", train), ("dev_data.jsonl", dev)):
        (folder / name).write_text("".join(json.dumps(r) + "\n" for r in rows))
    corpus = tmp / "psgs.tsv"
    corpus.write_text("id\ttext\ttitle\n" + "".join(f"{i}\t{t}\t{ti}\n" for i, ti, t in passages()))
    return folder, corpus


def test_five_to_eight_answer_filter_and_gold_from_proofs(tmp_path):
    train = [question("a", 4), question("b", 5), question("c", 8), question("d", 9),
             {"qid": "e", "question_text": "empty?", "answer_list": []}]
    dev = [question("x", 6), question("y", 5, missing_proof=True)]
    folder, corpus = write_fixture(tmp_path, train, dev)
    data = build_task("qampari", [f"data_dir={folder}", f"corpus={corpus}", "val_fraction=0"]).load()
    steps = data.info["steps"]
    assert steps["train"] == {"questions": 5, "non-empty answer list": 4, "5–8 answers": 2,
                              "every answer has a gold passage": 2}
    # y: its first answer has no proof snippet, so no candidate and no gold: the question is dropped
    assert steps["dev"] == {"questions": 2, "non-empty answer list": 2, "5–8 answers": 2,
                            "every answer has a gold passage": 1}
    assert sorted(data.splits["train"].query_ids) == ["b", "c"] and data.splits["test"].query_ids == ["x"]
    assert data.info["paper_gold_similarity"] == {"within": 0.86, "random": 0.74}  # QAMPARI's, not AmbigQA's
    test = data.splits["test"]
    assert test.targets.n_clusters.tolist() == [6]
    ids = data.corpus.ids
    assert [[ids[r] for r in c] for c in test.targets.nested()[0]] == [[str(100 + i)] for i in range(6)]
    assert data.info["gold_mapping"]["dense"] == "none"
    assert data.info["m_pred"] == 5  # the paper's AMER setting for QAMPARI, never read from the test answers


def test_bad_record_names_file_line_and_field(tmp_path):
    bad = question("b", 5)
    del bad["answer_list"][2]["answer_text"]
    folder, corpus = write_fixture(tmp_path, [question("a", 5), bad], [question("x", 5)])
    with pytest.raises(BenchError, match=r"train_data.jsonl, line 2 \(question b\), answer_list\[2\]: missing field "
                                         r"'answer_text'"):
        build_task("qampari", [f"data_dir={folder}", f"corpus={corpus}"]).load()


def test_missing_files_and_bad_range(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(BenchError, match="no train_data.jsonl"):
        build_task("qampari", [f"data_dir={tmp_path / 'empty'}"]).load()
    with pytest.raises(BenchError, match="min_answers"):
        build_task("qampari", [f"data_dir={tmp_path}", "min_answers=6", "max_answers=5"]).load()


@pytest.mark.robustness(case="QAMPARI run without -t corpus= (its real corpus is the user's download)",
                        outcome="one error asking for -t corpus=PATH, or -t corpus=wiki-vital for the offline stand-in "
                                "by name; nothing runs on a corpus the user did not name")
def test_the_corpus_must_be_named(tmp_path):
    folder, corpus = write_fixture(tmp_path, [question("a", 5)], [question("x", 5)])
    with pytest.raises(BenchError, match=r"task qampari: name its corpus with -t corpus=PATH .* -t corpus=wiki-vital"):
        build_task("qampari", [f"data_dir={folder}"]).load()
    with pytest.raises(BenchError, match="is not a file, a folder of \\*.jsonl files or a glob"):
        build_task("qampari", [f"data_dir={folder}", f"corpus={tmp_path / 'nope.tsv'}"]).load()


def test_published_chunk_folder_and_corpus_tag(tmp_path):
    """The chunked Wikipedia as published: a folder of wikipedia_chunks_{i}.jsonl files of {id, contents, meta}."""
    folder, _ = write_fixture(tmp_path, [question("a", 5), question("b", 6)], [question("x", 6)])
    chunks = tmp_path / "wikipedia_chunks"
    chunks.mkdir()
    for i, (pid, title, text) in enumerate(passages()):
        with open(chunks / f"wikipedia_chunks_{i % 3}.jsonl", "a") as fh:
            fh.write(json.dumps({"id": f"{pid}__0", "contents": f"{title} {text}",
                                 "meta": {"title": title, "content": text, "chunk_id": f"{pid}__0"}}) + "\n")
    data = build_task("qampari", [f"data_dir={folder}", f"corpus={chunks}", "val_fraction=0"]).load()
    assert data.splits["test"].query_ids == ["x"]
    ids = data.corpus.ids
    assert [[ids[r] for r in c] for c in data.splits["test"].targets.nested()[0]] == [
        [f"{100 + i}__0"] for i in range(6)]
    assert data.info["corpus_tag"] == f"wikipedia_chunks-{data.corpus.fingerprint[:8]}"
    assert data.info["corpus"]["files"] == 3
