"""bench/data/corpus.py at scale: the id table, the scan cache keyed by size + mtime, formats, and bad input."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from bench.data.corpus import CorpusIds, JsonlCorpus, TsvCorpus, read_qrels
from bench.data.task import Targets, build_task
from bench.errors import BenchError
from bench.metrics import parse_metric


def test_corpus_ids_behave_like_a_list_of_str():
    ids = CorpusIds.from_list(["007", "a", "ünï", "42"])
    assert len(ids) == 4 and ids[0] == "007" and ids[-1] == "42" and ids[1:3] == ["a", "ünï"]
    assert list(ids) == ["007", "a", "ünï", "42"] and ids == ["007", "a", "ünï", "42"]
    assert ids.row("ünï") == 2 and ids.row("7") == -1 and "a" in ids and "b" not in ids
    assert ids.rows(["42", "nope", "007"]).tolist() == [3, -1, 0]
    with pytest.raises(IndexError):
        ids[4]
    with pytest.raises(BenchError, match="duplicate id 'a'"):
        CorpusIds.from_list(["a", "b", "a"])


def test_many_ids_lookup_matches_positions():
    raw = [f"{i:07d}" for i in range(0, 50_000, 3)]
    ids = CorpusIds.from_list(raw)
    rng = np.random.default_rng(0)
    for r in rng.integers(0, len(raw), 200).tolist():
        assert ids.row(raw[r]) == r and ids[r] == raw[r]


def test_tsv_with_and_without_header_integer_ids_stay_strings(tmp_path):
    with_header = tmp_path / "a.tsv"
    with_header.write_text("id\ttext\ttitle\n007\tsome text\tT\n1\tmore\tU\n")
    without = tmp_path / "b.tsv"
    without.write_text("007\tsome text\tT\n1\tmore\tU\n")
    for path in (with_header, without):
        scan = TsvCorpus(path).scan()
        assert list(scan.ids) == ["007", "1"] and scan.ids.row("007") == 0 and scan.ids.row("7") == -1
        assert list(TsvCorpus(path).iter_documents())[0] == ("007", "T", "some text")
    reordered = tmp_path / "c.tsv"
    reordered.write_text("title\tid\ttext\nT\t007\tsome text\n")
    assert list(TsvCorpus(reordered).iter_documents()) == [("007", "T", "some text")]


def test_corpus_missing_a_column_says_which(tmp_path):
    path = tmp_path / "p.tsv"
    path.write_text("id\ttext\n1\tx\n")
    with pytest.raises(BenchError, match=r"p.tsv, line 1: the header has no column 'title'"):
        TsvCorpus(path).scan()
    path.write_text("1\tx\tT\n2\ty\n")
    with pytest.raises(BenchError, match=r"p.tsv, line 2: expected 3 tab-separated fields .* column 'title' is "
                                         r"missing"):
        TsvCorpus(path).scan()
    jl = tmp_path / "c.jsonl"
    jl.write_text(json.dumps({"_id": "1", "title": "T"}) + "\n")
    with pytest.raises(BenchError, match=r"c.jsonl, line 1: missing field 'text'"):
        JsonlCorpus(jl).scan()


def test_scan_is_cached_by_size_and_mtime_and_a_changed_file_is_rehashed(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text(json.dumps({"_id": "a", "text": "x"}) + "\n")
    first = JsonlCorpus(path).scan()
    assert first.fingerprint_info["method"] == "sha256"
    again = JsonlCorpus(path).scan()
    assert again.fingerprint_info["method"] == "cached" and again.fingerprint == first.fingerprint
    assert JsonlCorpus(path).scan(force_hash=True).fingerprint_info["method"] == "sha256"
    # same size, new content, new mtime: re-read and re-hashed
    st = path.stat()
    path.write_text(json.dumps({"_id": "b", "text": "y"}) + "\n")
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10_000_000))
    changed = JsonlCorpus(path).scan()
    assert changed.fingerprint_info["method"] == "sha256" and changed.fingerprint != first.fingerprint
    assert list(changed.ids) == ["b"]
    # a new size (same mtime forced back) is also a change
    path.write_text(json.dumps({"_id": "b", "text": "yy"}) + "\n")
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10_000_000))
    assert JsonlCorpus(path).scan().fingerprint_info["method"] == "sha256"


def _beir_folder(tmp: Path, qrels_lines: list[str], name: str = "test.tsv") -> Path:
    folder = tmp / "beir"
    (folder / "qrels").mkdir(parents=True)
    (folder / "corpus.jsonl").write_text("".join(json.dumps({"_id": f"{i:03d}", "text": f"doc {i}"}) + "\n"
                                                 for i in range(6)))
    (folder / "queries.jsonl").write_text("".join(json.dumps({"_id": q, "text": f"query {q}"}) + "\n"
                                                  for q in ("q1", "q2")))
    (folder / "qrels" / name).write_text("\n".join(qrels_lines) + "\n")
    return folder


def test_qrels_cluster_column_loads_into_clusters(tmp_path):
    folder = _beir_folder(tmp_path, ["query-id\tcorpus-id\tscore\tcluster", "q1\t000\t1\tparis", "q1\t003\t1\tlyon",
                                     "q1\t001\t1\tparis", "q2\t005\t1\tx", "q2\t004\t0\ty"])
    data = build_task("beir", [f"data_dir={folder}"]).load()
    t = data.splits["test"].targets
    assert t.nested() == [[[0, 1], [3]], [[5]]]
    # a ranking that finds one passage of each of q1's answers scores full answer recall
    ranking = np.array([[1, 3, -1], [2, 4, 5]])
    assert parse_metric("Recall@2").compute(ranking, t).tolist() == [1.0, 0.0]
    assert parse_metric("MRECALL@3").compute(ranking, t).tolist() == [1.0, 1.0]
    rels = read_qrels(folder / "qrels" / "test.tsv")
    assert [r.cluster for r in rels] == ["paris", "lyon", "paris", "x", "y"]
    jl = tmp_path / "qrels.jsonl"
    jl.write_text(json.dumps({"query-id": "q1", "corpus-id": "000", "score": 1, "cluster": 7}) + "\n")
    assert read_qrels(jl)[0].cluster == "7"


def test_qrels_without_header_may_carry_a_cluster(tmp_path):
    folder = _beir_folder(tmp_path, ["q1\t000\t1\ta", "q1\t002\t1\ta"])
    assert build_task("beir", [f"data_dir={folder}"]).load().splits["test"].targets.nested() == [[[0, 2]]]


@pytest.mark.parametrize("score", ["nan", "inf", "-inf", "NaN"])
def test_non_finite_qrels_score_is_an_error(tmp_path, score):
    folder = _beir_folder(tmp_path, ["query-id\tcorpus-id\tscore", "q1\t000\t1", f"q2\t001\t{score}"])
    with pytest.raises(BenchError, match=r"test.tsv, line 3: field 'score' must be a finite number"):
        build_task("beir", [f"data_dir={folder}"]).load()
    jl = tmp_path / "qrels.jsonl"
    jl.write_text(json.dumps({"query-id": "q1", "corpus-id": "000", "score": score}) + "\n")
    with pytest.raises(BenchError, match=r"qrels.jsonl, line 1: field 'score' must be a finite number"):
        read_qrels(jl)


def test_targets_reject_negative_and_out_of_range_rows():
    with pytest.raises(BenchError, match=r"query 1, cluster 0: gold document row -1 is out of range"):
        Targets.from_nested([[[3]], [[-1]]])
    with pytest.raises(BenchError, match=r"row 4 is out of range \(the corpus has rows 0..3\)"):
        Targets.from_nested([[[4]]], n_docs=4)
    with pytest.raises(BenchError, match="out of range"):
        Targets(np.array([0]), np.array([0]), np.array([9]), np.array([1])).check_rows(5)


def test_beir_train_fraction_splits_by_seeded_permutation(shared_data):
    folder = shared_data / "limit-small"
    a = build_task("limit-small", [f"data_dir={folder}", "train_fraction=0.5", "split_seed=1"]).load()
    b = build_task("limit-small", [f"data_dir={folder}", "train_fraction=0.5", "split_seed=1"]).load()
    c = build_task("limit-small", [f"data_dir={folder}", "train_fraction=0.5", "split_seed=2"]).load()
    sizes = {k: len(v) for k, v in a.splits.items()}
    assert sizes == {"train": 450, "val": 50, "test": 500}
    assert a.splits["test"].query_ids == b.splits["test"].query_ids != c.splits["test"].query_ids
    everything = [q for s in a.splits.values() for q in s.query_ids]
    assert len(set(everything)) == 1000
    assert a.info["split"]["seed"] == 1 and a.info["split"]["sizes"] == sizes
    default = build_task("limit-small", [f"data_dir={folder}"]).load()
    assert list(default.splits) == ["test"] and len(default.splits["test"]) == 1000
    with pytest.raises(BenchError, match="train_fraction"):
        build_task("limit-small", [f"data_dir={folder}", "train_fraction=1.0"]).load()
