"""tasks/ambigqa.py and tasks/multianswer.py: fixtures in the published AmbigNQ schema, and the real AmbigNQ counts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bench.data.answers import contains_alias, normalise
from bench.data.task import build_task
from bench.errors import BenchError
from tasks.ambigqa import parse_ambignq
from tasks.multianswer import StepCounts
from tests.support.ambignq import DEV, TRAIN, qa, write_fixture


def test_normalisation_and_token_bounded_match():
    assert normalise("  Théâtre de la Ville! ") == "theatre de la ville"
    assert normalise("The Beatles") == "beatles"
    assert normalise("Rio-de-Janeiro") == "rio de janeiro"
    assert normalise("AC/DC") == "ac dc"
    assert contains_alias(normalise("In December 1972, Apollo 17..."), normalise("december 1972"))
    assert not contains_alias(normalise("in 19723"), normalise("1972"))
    assert not contains_alias(normalise("Parisian"), normalise("Paris"))
    assert not contains_alias("anything", "")


def test_fixture_task_steps_clusters_and_splits(tmp_path):
    folder, corpus = write_fixture(tmp_path, TRAIN, DEV)
    data = build_task("ambigqa", [f"data_dir={folder}", f"corpus={corpus}", "dense=none", "val_fraction=0"]).load()
    steps = data.info["steps"]
    assert steps["train"] == {"questions": 6, "multi-answer (multipleQAs)": 5,
                              "no answer with an empty alias list": 4, "≥ 2 distinct answers": 3,
                              "every answer has a gold passage": 2}
    assert steps["dev"]["every answer has a gold passage"] == 2
    assert data.info["m_pred"] == 2  # the paper's AMER setting for AmbigQA
    all_ids = [q for s in data.splits.values() for q in s.query_ids]
    assert "t3" not in all_ids and "t4" not in all_ids and "t5" not in all_ids and "t6" not in all_ids
    # dev is split in halves by a seeded permutation: one dev question in train, the other in test
    assert len(data.splits["test"]) == 1 and data.splits["test"].query_ids[0] in ("d1", "d2")
    assert set(data.splits["train"].query_ids) == {"t1", "t2"} | ({"d1", "d2"} - set(data.splits["test"].query_ids))
    ids = data.corpus.ids
    train = data.splits["train"]
    nested = train.targets.nested()
    t1 = nested[train.query_ids.index("t1")]
    assert [[ids[r] for r in c] for c in t1] == [["p0"], ["p1"]]
    t2 = nested[train.query_ids.index("t2")]
    assert [[ids[r] for r in c] for c in t2] == [["p2"], ["p3"]]
    assert data.info["gold_mapping"]["depth"] == 500 and "token-bounded" in data.info["gold_mapping"]["normalisation"]
    assert data.info["split"]["seed"] == 0
    assert data.info["audit"]["ran"] is True and data.info["audit"]["dropped"] == []
    qrels = Path(data.info["prepared"]) / "qrels" / "train.tsv"
    assert qrels.read_text().splitlines()[0] == "query-id\tcorpus-id\tscore\tcluster"


def test_corpus_ids_stay_strings_and_prepared_task_is_cached(tmp_path):
    folder, corpus = write_fixture(tmp_path, TRAIN, DEV)
    params = [f"data_dir={folder}", f"corpus={corpus}", "dense=none"]
    first = build_task("ambigqa", params).load()
    assert first.corpus.ids[6] == "7" and isinstance(first.corpus.ids[6], str)
    prepared = Path(first.info["prepared"])
    stamp = (prepared / "meta.json").stat().st_mtime_ns
    again = build_task("ambigqa", params).load()
    assert (prepared / "meta.json").stat().st_mtime_ns == stamp  # served from the cache, not remapped
    assert again.data_hash() == first.data_hash()
    other = build_task("ambigqa", [*params, "split_seed=3"]).load()
    assert other.info["prepared"] != first.info["prepared"] and other.info["split"]["seed"] == 3


def test_malformed_record_names_file_line_and_field(tmp_path):
    bad = [TRAIN[0], {"id": "x", "annotations": []}]
    folder, corpus = write_fixture(tmp_path, bad, DEV)
    with pytest.raises(BenchError) as err:
        build_task("ambigqa", [f"data_dir={folder}", f"corpus={corpus}", "dense=none"]).load()
    text = str(err.value)
    assert "train_light.json, line " in text and "missing field 'question'" in text
    line = int(text.split("line ")[1].split(":")[0].split()[0])
    assert (folder / "train_light.json").read_text().splitlines()[line - 1].strip() == "{"
    bad_pair = [qa("y", "q?", ["a"], ["b"])]
    bad_pair[0]["annotations"][0]["qaPairs"][1]["answer"] = "b"
    folder2 = tmp_path / "two"
    folder2.mkdir()
    f, _ = write_fixture(folder2, bad_pair, DEV)
    with pytest.raises(BenchError, match=r"line \d+ \(question y\), qaPairs\[1\]: field 'answer' must be list"):
        build_task("ambigqa", [f"data_dir={f}", f"corpus={corpus}", "dense=none"]).load()


def test_no_survivor_is_a_clear_error(tmp_path):
    folder, corpus = write_fixture(tmp_path, TRAIN, [qa("d9", "What?", ["Atlantis"], ["Mu"])])
    with pytest.raises(BenchError, match="no test question keeps a gold passage"):
        build_task("ambigqa", [f"data_dir={folder}", f"corpus={corpus}", "dense=none"]).load()


def test_real_ambignq_multi_answer_counts(shared_data):
    """The counts the shared data README states (train 4,749, dev 1,172 multi-answer), by our parser."""
    counts = StepCounts()
    train = parse_ambignq(shared_data / "ambignq" / "train_light.json", "train", counts)
    dev = parse_ambignq(shared_data / "ambignq" / "dev_light.json", "dev", counts)
    assert counts.steps["train"]["questions"] == 10036 and counts.steps["dev"]["questions"] == 2002
    assert counts.steps["train"]["multi-answer (multipleQAs)"] == 4749
    assert counts.steps["dev"]["multi-answer (multipleQAs)"] == 1172
    assert len(train) == counts.steps["train"]["≥ 2 distinct answers"] <= 4749
    assert all(len(q.answers) >= 2 for q in train + dev)
    assert np.mean([len(q.answers) for q in dev]) > 2


@pytest.mark.slow
def test_dense_candidates_join_the_mapping(tmp_path):
    """With the minilm retriever the candidate pool is BM25 ∪ dense; the mapping records the dense space."""
    folder, corpus = write_fixture(tmp_path, TRAIN, DEV)
    data = build_task("ambigqa", [f"data_dir={folder}", f"corpus={corpus}"]).load()
    assert data.info["gold_mapping"]["dense"] == "minilm"
    assert data.info["gold_mapping"]["dense_space"].startswith("sentence-transformers/all-MiniLM-L6-v2@")
    assert sum(len(s) for s in data.splits.values()) == 4


def test_nq_open_multi_answer_questions_join_train(tmp_path):
    folder, corpus = write_fixture(tmp_path, TRAIN, DEV)
    nq = tmp_path / "nq-open"
    nq.mkdir()
    rows = [{"question": "which teams won the world cup in 2014 and 2018", "answer": ["France", "Germany",
                                                                                      "the Germany team"]},
            {"question": "when was the last moon landing", "answer": ["December 1972", "14 December 1972"]}]
    (nq / "NQ-open.dev.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    data = build_task("ambigqa", [f"data_dir={folder}", f"corpus={corpus}", "dense=none", "val_fraction=0",
                                  "nq_open=true", f"nq_open_dir={nq}"]).load()
    assert data.info["steps"]["nq-open"] == {"questions": 2, "≥ 2 distinct answers": 1,
                                             "every answer has a gold passage": 1}
    train = data.splits["train"]
    i = train.query_ids.index("nq-open:NQ-open.dev:1")
    assert train.targets.n_clusters[i] == 2 and "nq-open:NQ-open.dev:1" not in data.splits["test"].query_ids


def test_own_ambignq_files_need_a_named_corpus(tmp_path):
    """With the shared AmbigNQ files the offline stand-in is the default; with your own, the corpus must be named —
    `corpus=wiki-vital` asks for the stand-in by name."""
    folder, corpus = write_fixture(tmp_path, TRAIN, DEV)
    with pytest.raises(BenchError, match=r"task ambigqa: name its corpus with -t corpus=PATH"):
        build_task("ambigqa", [f"data_dir={folder}", "dense=none"]).load()
    from tasks.ambigqa import OFFLINE_CORPUS, default_corpus

    path, label, tag = default_corpus("wiki-vital", "ambigqa", required=True)
    assert path.endswith("summaries_en-us.json") and "not comparable" in label and tag == OFFLINE_CORPUS
    assert default_corpus(None, "ambigqa", required=False)[2] == OFFLINE_CORPUS
    assert default_corpus(path, "ambigqa")[1:] == (label, tag)  # the stand-in named by its path is still the stand-in
    data = build_task("ambigqa", [f"data_dir={folder}", f"corpus={corpus}", "dense=none"]).load()
    assert data.info["corpus_tag"] == f"psgs-{data.corpus.fingerprint[:8]}"
# ------------------------------------------------------------------------ the reference's matcher and answer cap
def test_dpr_tokens_keep_punctuation_and_articles():
    """DPR's has_answer tokens (written from its published description): NFD, runs of letters / digits / combining
    marks, every other non-space, non-control character on its own, lower case."""
    from bench.data.answers import dpr_form, dpr_tokens

    assert dpr_tokens("AC/DC") == ["ac", "/", "dc"] and normalise("AC/DC") == "ac dc"
    assert dpr_tokens("The Beatles") == ["the", "beatles"] and normalise("The Beatles") == "beatles"
    assert dpr_tokens("U.S.\tArmy\n") == ["u", ".", "s", ".", "army"]
    assert dpr_tokens("Café") == ["cafe\u0301"]  # NFD: the accent is a combining mark inside the token
    assert dpr_form("Rio-de-Janeiro") == "rio - de - janeiro"
    # a token sequence, not a substring: "19723" does not contain the token "1972"; "1972." does
    assert contains_alias(dpr_form("in December 1972."), dpr_form("1972"))
    assert not contains_alias(dpr_form("in 19723"), dpr_form("1972"))
    assert not contains_alias(dpr_form("Rio de Janeiro"), dpr_form("Rio-de-Janeiro"))


CAP_TRAIN = [
    qa("u1", "Who won the World Cup in 2018 and 2014?", ["France"], ["Germany"]),
    qa("u2", "Where were the Olympics held in 2012 and 2016?", ["London"], ["Rio-de-Janeiro"]),  # hyphens: ours only
    qa("u3", "Which World Cup teams of 2014 and 2018 and Summer Olympics hosts of 2012 and 2016?", ["France"],
       ["Croatia"], ["Germany"], ["London"], ["Rio de Janeiro"], ["Brazil"]),  # six answers: dropped by max_answers=5
]
CAP_DEV = [
    qa("v1", "Which teams reached the World Cup final in 2018?", ["France"], ["Croatia"]),
    qa("v2", "Where were the 2012 and 2016 Summer Olympics?", ["London"], ["Rio de Janeiro"]),
]


@pytest.mark.parametrize(("extra", "gold", "capped", "matching"), [
    ([], 3, None, "token-bounded"),
    (["max_answers=5"], 3, 2, "token-bounded"),
    (["matcher=dpr"], 2, None, "DPR has_answer"),
    (["matcher=dpr", "max_answers=5"], 2, 1, "DPR has_answer"),
])
def test_reference_matcher_and_answer_cap(tmp_path, extra, gold, capped, matching):
    folder, corpus = write_fixture(tmp_path, CAP_TRAIN, CAP_DEV)
    data = build_task("ambigqa", [f"data_dir={folder}", f"corpus={corpus}", "dense=none", "val_fraction=0",
                                  *extra]).load()
    steps = data.info["steps"]["train"]
    assert steps["every answer has a gold passage"] == gold
    assert steps.get("≤ 5 answers (max_answers)") == capped
    assert data.info["gold_mapping"]["matcher"] == ("dpr" if "matcher=dpr" in extra else "harness")
    assert matching in data.info["gold_mapping"]["normalisation"]
    n_test = sum(len(s) for s in data.splits.values())
    assert n_test == (capped if capped is not None else gold) + data.info["steps"]["dev"][
        "every answer has a gold passage"]
    assert data.info["instruction"] == "Given a question, retrieve Wikipedia passages that answer the question"


def test_matcher_and_cap_are_validated_and_default_keeps_its_key(tmp_path):
    folder, corpus = write_fixture(tmp_path, TRAIN, DEV)
    base = [f"data_dir={folder}", f"corpus={corpus}", "dense=none"]
    with pytest.raises(BenchError, match="matcher must be one of harness, dpr"):
        build_task("ambigqa", [*base, "matcher=exact"])
    with pytest.raises(BenchError, match="max_answers must be ≥ 2"):
        build_task("ambigqa", [*base, "max_answers=1"])
    from tasks.multianswer import MappingParams

    assert "matcher" not in MappingParams().key() and MappingParams(matcher="dpr").key()["matcher"] == "dpr"
    a = build_task("ambigqa", base).load()
    b = build_task("ambigqa", [*base, "matcher=harness"]).load()
    c = build_task("ambigqa", [*base, "matcher=dpr"]).load()
    assert a.info["prepared"] == b.info["prepared"] != c.info["prepared"]


# ------------------------------------------------------------------------ more training questions: train_gold
def test_train_gold_two_keeps_train_questions_with_two_gold_answers_and_leaves_test_alone(tmp_path):
    """`train_gold=two` keeps a train question when at least two answers have a gold passage (the answer without one
    dropped); a test question still needs every answer, so the test split is the strict rule's."""
    train = [*CAP_TRAIN[:2], qa("u4", "Who won the World Cup in 2018 and 2014, and who won Atlantis?", ["France"],
                                ["Germany"], ["Atlantis United"])]
    dev = [*CAP_DEV, qa("v3", "Which teams reached the final in 2018, and in Atlantis?", ["France"], ["Croatia"],
                        ["Atlantis United"])]
    folder, corpus = write_fixture(tmp_path, train, dev)
    base = [f"data_dir={folder}", f"corpus={corpus}", "dense=none", "val_fraction=0"]
    strict = build_task("ambigqa", base).load()
    two = build_task("ambigqa", [*base, "train_gold=two"]).load()
    assert strict.info["prepared"] != two.info["prepared"]
    assert "u4" not in strict.splits["train"].query_ids
    tr = two.splits["train"]
    assert tr.targets.n_clusters[tr.query_ids.index("u4")] == 2  # France and Germany; Atlantis United dropped
    steps = two.info["steps"]["train"]
    assert steps["every answer has a gold passage"] + 1 == steps[
        "… or, in train, at least two answers have one (train_gold=two)"]
    test_a, test_b = strict.splits["test"], two.splits["test"]
    assert "v3" not in test_b.query_ids and test_a.query_ids == test_b.query_ids
    assert test_a.targets.nested() == test_b.targets.nested()
    with pytest.raises(BenchError, match="train_gold must be one of every, two"):
        build_task("ambigqa", [*base, "train_gold=some"])
