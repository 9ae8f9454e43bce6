"""bench/data/audit.py: planted leaks are found, and the drop option removes exactly those."""

from __future__ import annotations

from bench.data.audit import apply_audit, audit, jaccard_pairs
from bench.data.task import Corpus, Split, Targets, TaskData


def _data() -> TaskData:
    corpus = Corpus(ids=[f"d{i}" for i in range(20)], fingerprint="fp")
    train = Split("train", ["t0", "t1", "t2"], Targets.from_nested([[[0], [1]], [[2, 3], [4]], [[5], [6]]]),
                  texts=["Who won the World Cup in 2018?", "Where were the Olympics held?", "Name the rivers of Spain"])
    test = Split("test", ["q0", "q1", "q2", "q3"],
                 Targets.from_nested([[[10], [11]],            # clean
                                      [[12], [13]],            # planted: same question as t0 (case, punctuation)
                                      [[4], [3, 2]],           # planted: same gold set as t1, other clusters
                                      [[7, 8], [8]]]),         # clean, but d8 is gold for both of its answers
                 texts=["Which planets have rings?", "who won the world cup in 2018", "Tell me about the games",
                        "Which moons orbit Mars?"])
    return TaskData("t", corpus, {"train": train, "test": test}, modality="text")


def test_jaccard_pairs_hand_computed():
    got = jaccard_pairs([[1, 2, 3], [7]], [[1, 2, 3, 4], [9], [7]], 0.5)
    assert sorted(got) == [(0, 0, 0.75), (1, 2, 1.0)]
    assert jaccard_pairs([[]], [[]], 0.0) == []


def test_audit_finds_planted_duplicates():
    report = audit(_data())
    assert [(d["test_id"], d["train_id"]) for d in report.duplicate_questions] == [("q1", "t0")]
    assert report.duplicate_questions[0]["jaccard"] == 1.0
    assert [(d["test_id"], d["train_id"]) for d in report.duplicate_gold_sets] == [("q2", "t1")]
    assert report.leaked == ["q1", "q2"]
    assert report.repeated_gold == {"train": 0, "test": 1}
    assert report.questions_sharing_gold["test"] == ["q3"]


def test_drop_removes_exactly_the_leaked_and_records_it():
    kept = apply_audit(_data(), drop=True)
    assert kept.splits["test"].query_ids == ["q0", "q3"]
    assert kept.splits["test"].targets.nested() == [[[10], [11]], [[7, 8], [8]]]
    rec = kept.info["audit"]
    assert rec["ran"] is True and rec["dropped"] == ["q1", "q2"] and rec["drop_leaked"] is True
    untouched = apply_audit(_data(), drop=False)
    assert len(untouched.splits["test"]) == 4
    assert untouched.info["audit"]["dropped"] == [] and untouched.info["audit"]["leaked_test_questions"] == ["q1", "q2"]


def test_near_duplicate_threshold():
    data = _data()
    data.splits["test"].texts[0] = "Who won the World Cup in 2018 ?!"  # same tokens as t0
    assert {d["test_id"] for d in audit(data).duplicate_questions} == {"q0", "q1"}
    data.splits["test"].texts[0] = "Who won the World Cup in 2014?"  # 5 of 7 tokens shared: below 0.9
    assert {d["test_id"] for d in audit(data).duplicate_questions} == {"q1"}
    assert {d["test_id"] for d in audit(data, question_threshold=0.6).duplicate_questions} == {"q0", "q1"}
