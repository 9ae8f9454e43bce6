"""End to end on synthetic data: oracle is perfect, input is not; results are stored and reload."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bench.errors import BenchError
from bench.evaluate import evaluate_named
from bench.results.record import SCHEMA_VERSION, find_runs, load_run
from bench.systems.session import Session

SMALL = ["d=32", "n_train=50", "n_test=40", "n_negatives=2000"]


def test_oracle_and_input_on_the_default_task(tmp_path) -> None:
    """The issue's acceptance: oracle MRECALL@10 = 1.0, input far lower, on synthetic-linear-single as shipped."""
    session = Session(device="cpu")
    oracle, p1 = evaluate_named("synthetic-linear-single", "oracle", (10, 100), results_dir=tmp_path, session=session)
    inp, p2 = evaluate_named("synthetic-linear-single", "input", (10, 100), results_dir=tmp_path, session=session)
    assert oracle.summary["MRECALL@10"] == 1.0
    assert inp.summary["MRECALL@10"] < 0.5
    # the identity target is always found by the input vector itself: Recall@10 is exactly 1/5
    assert inp.summary["Recall@10"] == pytest.approx(0.2)
    # query-side cost: the oracle searches one vector per target (five), the input one; neither calls an LLM
    assert oracle.extra["query_cost"] == {"searches_per_query": 5.0, "llm_calls_per_query": 0.0}
    assert inp.extra["query_cost"] == {"searches_per_query": 1.0, "llm_calls_per_query": 0.0}
    # one index, shared by both retrievers: the session hands the same object to a second retriever on this corpus
    from bench.data.task import build_task
    from bench.systems.retriever import build_retriever

    data = session.task_data(build_task("synthetic-linear-single"))
    assert session.corpus_index(data, build_retriever("oracle"))[1] is session.corpus_index(data,
                                                                                           build_retriever("input"))[1]
    assert oracle.retriever_info["doc_space"] == inp.retriever_info["doc_space"] == "vectors"
    for path, rec in ((p1, oracle), (p2, inp)):
        again = load_run(path)
        assert again.summary == rec.summary and again.per_query == rec.per_query
        assert path.with_suffix(".trec").exists()


def test_result_records_provenance(tmp_path) -> None:
    rec, path = evaluate_named("synthetic-mlp-ood", "input", (5,), task_params=SMALL, seed=7, results_dir=tmp_path)
    data = json.loads(path.read_text())
    assert data["schema_version"] == SCHEMA_VERSION
    expect = {"d": 32, "n_train": 50, "n_test": 40, "n_negatives": 2000, "seed": 0, "mlp_variant": "negated"}
    assert {k: data["task_params"].get(k) for k in expect} == expect  # every parameter, defaults included
    assert data["seed"] == 7
    assert set(data["data_hash"]) == {"corpus", "train", "test"}
    assert "numpy" in data["versions"] and "faiss-cpu" in data["versions"]
    assert set(data["per_query"]) == {"MRECALL@5", "Recall@5"}
    assert len(data["per_query"]["MRECALL@5"]) == 40 == len(data["query_ids"])
    assert data["task_info"]["mlp_variant"] == "negated"
    assert path.parent == tmp_path / "synthetic-mlp-ood" / "input"


def test_same_config_same_numbers(tmp_path) -> None:
    a, _ = evaluate_named("synthetic-linear-multi", "input", (10,), task_params=SMALL, results_dir=tmp_path)
    b, _ = evaluate_named("synthetic-linear-multi", "input", (10,), task_params=SMALL, results_dir=tmp_path)
    assert a.per_query == b.per_query and a.config_hash == b.config_hash and a.data_hash == b.data_hash
    assert len(find_runs(tmp_path, "synthetic-linear-multi")) == 2


def test_trec_file_is_in_ranking_order(tmp_path) -> None:
    rec, path = evaluate_named("synthetic-linear-single", "oracle", (10,), task_params=SMALL, results_dir=tmp_path)
    lines = path.with_suffix(".trec").read_text().splitlines()
    first = [ln.split() for ln in lines if ln.startswith(rec.query_ids[0] + " ")]
    assert [int(f[3]) for f in first] == list(range(1, len(first) + 1))
    scores = [float(f[4]) for f in first]  # the real fused scores (round-robin: 1/rank), never increasing
    assert scores == sorted(scores, reverse=True) and scores[0] == 1.0 and scores[1] == 0.5
    assert all(f[1] == "Q0" and f[5] == "oracle" for f in first)


def test_unknown_names(tmp_path) -> None:
    with pytest.raises(BenchError, match="did you mean synthetic-linear-single"):
        evaluate_named("synthetic-linar-single", "oracle", (10,), results_dir=tmp_path)
    with pytest.raises(BenchError, match="unknown retriever 'orcle'; did you mean oracle"):
        evaluate_named("synthetic-linear-single", "orcle", (10,), results_dir=tmp_path)


def test_results_load_forward_and_backward(tmp_path) -> None:
    rec, path = evaluate_named("synthetic-linear-single", "input", (10,), task_params=SMALL, results_dir=tmp_path)
    data = json.loads(path.read_text())
    data["field_from_the_future"] = {"x": 1}
    for optional in ("timings", "versions", "extra"):
        del data[optional]
    path.write_text(json.dumps(data))
    again = load_run(path)
    assert again.unknown == {"field_from_the_future": {"x": 1}}
    assert again.timings == {} and np.array_equal(again.values("MRECALL@10"), rec.values("MRECALL@10"))
    path.write_text("{not json")
    with pytest.raises(BenchError, match="not valid JSON"):
        load_run(path)
    path.write_text(json.dumps({"run_id": "x"}))
    with pytest.raises(BenchError, match="missing field"):
        load_run(path)


def test_trec_ids_with_spaces_are_encoded(tmp_path) -> None:
    from bench.results.record import trec_id, write_trec_run

    assert trec_id("d12") == "d12" and trec_id("Ada Lovelace") == "Ada%20Lovelace" and trec_id("50%") == "50%25"
    write_trec_run(tmp_path / "r.trec", ["q 1"], np.array([[1, 0]]), ["Alan Turing", "Grace\tHopper"], "my run")
    lines = (tmp_path / "r.trec").read_text().splitlines()
    assert lines == ["q%201 Q0 Grace%09Hopper 1 2 my%20run", "q%201 Q0 Alan%20Turing 2 1 my%20run"]
    assert all(len(line.split()) == 6 for line in lines)


def test_an_approximate_index_is_part_of_the_config_hash(tmp_path) -> None:
    """An IVF run and a flat run of one retriever are different configurations (their numbers may differ); the flat
    default keeps the hash a run had before indexes had kinds."""
    from bench.index import IndexSpec

    flat, _ = evaluate_named("synthetic-linear-single", "input", [10], SMALL, results_dir=tmp_path)
    ivf, _ = evaluate_named("synthetic-linear-single", "input", [10], SMALL, results_dir=tmp_path,
                 session=Session(index=IndexSpec(kind="ivf", nprobe=2)))
    again, _ = evaluate_named("synthetic-linear-single", "input", [10], SMALL, results_dir=tmp_path)
    assert flat.config_hash == again.config_hash != ivf.config_hash
    assert ivf.extra["index"]["params"] == {"nprobe": 2} and ivf.extra["index"]["factory"].startswith("IVF")
