"""Property tests (hypothesis): every reader either parses its input or raises one BenchError, never another
exception; the metrics obey their definitions (docs/architecture.md §4) for arbitrary rankings and answer clusters.

Fixed seed and bounded example counts (the `bench-ci` profile: derandomize=True), so CI sees the same examples on
every run.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from bench.data.task import Targets
from bench.errors import BenchError
from bench.metrics.mrecall import mrecall_at_k
from bench.metrics.recall import recall_at_k

settings.register_profile(
    "bench-ci", derandomize=True, max_examples=60, deadline=None, database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
CI = settings.get_profile("bench-ci")
robust = pytest.mark.robustness

# ---------------------------------------------------------------------------------------------------- inputs

json_scalars = st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.text(max_size=12) | \
    st.floats(allow_nan=True, allow_infinity=True)
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=4) |
                           st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=12)
ID_FIELDS = ["_id", "text", "title", "query-id", "corpus-id", "score", "cluster"]
# records that look like the real thing, with fields of any type (missing, null, list, NaN, ...)
near_records = st.dictionaries(st.sampled_from(ID_FIELDS), json_values | st.text(max_size=6), max_size=6)


def _lines(values: list) -> bytes:
    return "\n".join(json.dumps(v, allow_nan=True) for v in values).encode("utf-8")


jsonl_payloads = (
    st.binary(max_size=300)
    | st.lists(json_values, max_size=5).map(_lines)
    | st.lists(near_records, max_size=5).map(_lines)
    | st.lists(near_records, min_size=1, max_size=5).map(_lines).map(lambda b: b[: max(1, len(b) // 2)])  # truncated
)
tsv_payloads = st.binary(max_size=300) | st.lists(
    st.lists(st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=8), max_size=5)
    .map(lambda cols: "\t".join(cols)), max_size=5).map(lambda rows: "\n".join(rows).encode("utf-8"))


def _write(tmp_path: Path, name: str, payload: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(payload)
    return path


def _parse_or_bench_error(fn, *args) -> None:  # type: ignore[no-untyped-def]
    try:
        fn(*args)
    except BenchError as exc:
        assert str(exc).strip() and "\n" not in str(exc).strip(), repr(str(exc))  # one line
    # anything else propagates and fails the test


# ---------------------------------------------------------------------------------------------------- readers


@robust(case="arbitrary bytes / JSON / near-miss records / truncated lines as corpus.jsonl, corpus.tsv, "
        "queries.jsonl, qrels.jsonl, qrels .tsv (hypothesis, fixed seed)",
        outcome="a valid parse or one single-line BenchError (→ `error:` line, exit 2); never another exception")
@pytest.mark.parametrize("reader", ["corpus.jsonl", "corpus.tsv", "queries.jsonl", "qrels.jsonl", "qrels.tsv"])
@CI
@given(data=st.data())
def test_text_readers_parse_or_raise_bench_error(tmp_path_factory: pytest.TempPathFactory, reader: str,
                                                 data: st.DataObject) -> None:
    from bench.data.corpus import JsonlCorpus, TsvCorpus, read_qrels, read_queries

    payload = data.draw(tsv_payloads if reader.endswith(".tsv") else jsonl_payloads)
    path = _write(tmp_path_factory.mktemp("in"), reader, payload)
    if reader == "corpus.jsonl":
        _parse_or_bench_error(lambda p: list(JsonlCorpus(p).iter_documents()), path)
        _parse_or_bench_error(lambda p: JsonlCorpus(p).scan(cache=False), path)
    elif reader == "corpus.tsv":
        _parse_or_bench_error(lambda p: list(TsvCorpus(p).iter_documents()), path)
        _parse_or_bench_error(lambda p: TsvCorpus(p).scan(cache=False), path)
    elif reader == "queries.jsonl":
        _parse_or_bench_error(read_queries, path)
    else:
        _parse_or_bench_error(read_qrels, path)


yaml_payloads = (
    st.binary(max_size=300)
    | json_values.map(lambda v: json.dumps(v, allow_nan=True).encode("utf-8"))  # JSON is YAML
    | st.lists(near_records, max_size=3).map(lambda es: json.dumps({"entries": es}, allow_nan=True).encode())
    | st.fixed_dictionaries({"task": json_values, "retriever": json_values, "metric": json_values,
                             "expected": json_values, "tolerance": json_values})
    .map(lambda e: json.dumps({"entries": [e]}, allow_nan=True).encode())
)


@robust(case="arbitrary bytes / JSON / entries with fields of any type (NaN, lists, null) as a `bench check` YAML "
        "file (hypothesis)", outcome="a valid parse or one single-line BenchError naming file and line")
@CI
@given(payload=yaml_payloads)
def test_yaml_reader_parses_or_raises_bench_error(tmp_path_factory: pytest.TempPathFactory, payload: bytes) -> None:
    from bench.results.check import load_expectations

    path = _write(tmp_path_factory.mktemp("yaml"), "expected.yaml", payload)
    _parse_or_bench_error(load_expectations, path)


run_fields = st.fixed_dictionaries(
    {}, optional={k: json_values for k in ("run_id", "task", "retriever", "ks", "query_ids", "per_query", "summary",
                                           "schema_version", "seed", "extra", "unknown", "timings")})
results_payloads = st.binary(max_size=300) | json_values.map(lambda v: json.dumps(v, allow_nan=True).encode()) | \
    run_fields.map(lambda d: json.dumps(d, allow_nan=True).encode())


@robust(case="arbitrary bytes / JSON / run records with fields of any type as a results file (hypothesis)",
        outcome="a valid parse or one single-line BenchError naming the file")
@CI
@given(payload=results_payloads)
def test_results_reader_parses_or_raises_bench_error(tmp_path_factory: pytest.TempPathFactory,
                                                     payload: bytes) -> None:
    from bench.results.record import load_run

    path = _write(tmp_path_factory.mktemp("res"), "run.json", payload)
    _parse_or_bench_error(load_run, path)


QIDS = [f"q{i}" for i in range(6)]
METRICS = ("MRECALL@10", "Recall@10")


def _record(system: str, mrecall: list[float], recall: list[float]) -> dict:
    """A run record of one system on six queries, as `bench run` writes it (the fields compare reads)."""
    per_query = {"MRECALL@10": mrecall, "Recall@10": recall}
    return {"schema_version": 2, "run_id": f"20260101T000000000Z-{system * 8}",
            "task": "synthetic-linear-single", "retriever": system, "system": system, "split": "test", "ks": [10],
            "query_ids": list(QIDS), "per_query": per_query,
            "summary": {m: sum(v) / len(v) for m, v in per_query.items()},
            "data_hash": {"corpus": "c0", "test": "t0"}, "seed": 0, "corpus_size": 100}


valid_runs = st.builds(
    _record, st.just("b"), st.lists(st.sampled_from([0.0, 1.0]), min_size=6, max_size=6),
    st.lists(st.floats(0, 1, allow_nan=False) | st.sampled_from([0.0, 0.5, 1.0]), min_size=6, max_size=6))
impossible = st.sampled_from([5.0, -0.5, 1.5, 0.5, 100.0, -1e-9, 1 + 1e-9, float("nan"), float("inf")])


@st.composite
def broken_runs(draw: st.DrawFn) -> dict:
    """A valid record with one field made impossible: a metric value out of range (or a fraction where MRECALL
    counts, or NaN) for one query or every query, a summary out of range, a field of the wrong type, a missing field,
    a count below zero."""
    rec = draw(valid_runs)
    how = draw(st.sampled_from(["per_query", "every_query", "summary", "type", "missing", "count"]))
    if how == "per_query":
        values = rec["per_query"][draw(st.sampled_from(METRICS))]
        values[draw(st.integers(0, 5))] = draw(impossible)
    elif how == "every_query":  # a mean out of range too, whatever the other values
        rec["per_query"][draw(st.sampled_from(METRICS))] = [draw(impossible)] * 6
    elif how == "summary":
        rec["summary"][draw(st.sampled_from(METRICS))] = draw(impossible)
    elif how == "type":
        rec[draw(st.sampled_from(["per_query", "summary", "ks", "query_ids", "task"]))] = draw(json_scalars)
    elif how == "missing":
        del rec[draw(st.sampled_from(["per_query", "summary", "query_ids", "task", "run_id"]))]
    else:
        rec[draw(st.sampled_from(["seed", "corpus_size"]))] = -draw(st.integers(1, 10))
    return rec


def _as_json(rec: dict) -> bytes:
    return json.dumps(rec, allow_nan=True).encode()


run_files = valid_runs.map(_as_json) | broken_runs().map(_as_json) | \
    broken_runs().map(_as_json).map(lambda b: b[: len(b) // 2]) | st.binary(max_size=200)  # truncated, or bytes


@robust(case="random valid and invalid results files (values out of range, fractions where MRECALL counts, NaN, "
        "wrong types, missing fields, negative counts, truncated JSON, bytes) given to `bench compare`, as --run files "
        "and in a results folder (hypothesis, fixed seed)",
        outcome="either a table whose every value lies in [0, 100] (broken files in a folder skipped with a warning "
        "each) or exactly one `error:` line; never a traceback", issue=11)
@settings(CI, max_examples=40)
@given(files=st.lists(run_files, min_size=1, max_size=3), mode=st.sampled_from(["runs", "folder"]))
@example(files=[_as_json(_record("b", [5.0] * 6, [1.0] * 6))], mode="runs")  # "500.00*" before records were checked
@example(files=[_as_json(_record("b", [5.0] * 6, [1.0] * 6))], mode="folder")
def test_compare_prints_values_in_range_or_one_error(tmp_path_factory: pytest.TempPathFactory,
                                                     capsys: pytest.CaptureFixture, files: list[bytes],
                                                     mode: str) -> None:
    from bench.cli import main

    root = tmp_path_factory.mktemp("compare")
    baseline = root / "results" / "synthetic-linear-single" / "a" / "20250101T000000000Z-00000000.json"
    baseline.parent.mkdir(parents=True)
    baseline.write_text(json.dumps(_record("a", [1.0, 0.0, 1.0, 1.0, 0.0, 1.0], [1.0, 0.5, 1.0, 1.0, 0.2, 1.0])))
    paths = [baseline]
    for i, payload in enumerate(files):
        path = root / "results" / "synthetic-linear-single" / "b" / f"2026010{i + 1}T000000000Z-0000000{i}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(payload)
        paths.append(path)
    where = [a for p in paths for a in ("--run", str(p))] if mode == "runs" else \
        ["--task", "synthetic-linear-single", "--results-dir", str(root / "results")]
    capsys.readouterr()
    code = main(["compare", *where, "--format", "json", "--resamples", "200", "--baseline", "a"])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    if code == 0:
        assert errors == []
        doc = json.loads(out)
        values = [row[key] for row in doc["rows"] for key in ("value", "baseline_value") if row[key] is not None]
        assert values and all(0 <= 100 * v <= 100 for v in values), values
    else:
        assert code == 2 and len(errors) == 1, err


@robust(case="arbitrary bytes in place of a cached synthetic task file (hypothesis)",
        outcome="the entry is reported, moved aside and rebuilt: the arrays come back right, never an exception")
@settings(CI, max_examples=25)
@given(payload=st.binary(max_size=2000))
def test_cached_task_file_with_any_bytes_heals(tmp_path_factory: pytest.TempPathFactory, payload: bytes) -> None:
    import os

    from bench.storage.cache import load_or_build_arrays, manifest_path

    root = tmp_path_factory.mktemp("cache")
    old = os.environ.get("BENCH_CACHE_DIR")
    os.environ["BENCH_CACHE_DIR"] = str(root)
    try:
        want = {"corpus": np.arange(6, dtype=np.float32).reshape(2, 3)}
        load_or_build_arrays("synthetic", "k", lambda: want, required=("corpus",))
        entry = root / "synthetic" / "k.npz"
        entry.write_bytes(payload)
        for keep_manifest in (True, False):
            if not keep_manifest:
                entry.write_bytes(payload)
                manifest_path(entry).unlink(missing_ok=True)
            got = load_or_build_arrays("synthetic", "k", lambda: want, required=("corpus",))
            assert np.array_equal(got["corpus"], want["corpus"])
    finally:
        if old is None:
            os.environ.pop("BENCH_CACHE_DIR", None)
        else:
            os.environ["BENCH_CACHE_DIR"] = old


# ---------------------------------------------------------------------------------------------------- metrics


@st.composite
def cases(draw: st.DrawFn) -> tuple[np.ndarray, list[list[list[int]]], int]:
    """A ranking (n × depth corpus rows, -1 = empty slot, duplicates allowed) and per query its answer clusters."""
    n_docs = draw(st.integers(1, 30))
    n = draw(st.integers(1, 6))
    depth = draw(st.integers(1, 12))
    rows = draw(st.lists(st.lists(st.integers(-1, n_docs - 1), min_size=depth, max_size=depth), min_size=n,
                         max_size=n))
    nested = draw(st.lists(st.lists(st.lists(st.integers(0, n_docs - 1), min_size=1, max_size=3), min_size=1,
                                    max_size=6), min_size=n, max_size=n))
    k = draw(st.integers(1, depth + 2))
    return np.array(rows, dtype=np.int64), nested, k


def by_hand(ranking: np.ndarray, nested: list[list[list[int]]], k: int) -> tuple[list[float], list[float]]:
    """docs/architecture.md §4 in plain Python, independent of the vectorised code: per query (MRECALL@k, Recall@k)."""
    mrec, rec = [], []
    for row, clusters in zip(ranking.tolist(), nested, strict=True):
        top = {d for d in row[:k] if d >= 0}
        hit = sum(1 for docs in clusters if top & set(docs))
        m = len(clusters)
        mrec.append(1.0 if hit >= min(k, m) else 0.0)
        rec.append(hit / m)
    return mrec, rec


@robust(case="arbitrary rankings (empty slots, any depth) and answer clusters (hypothesis)",
        outcome="MRECALL@k and Recall@k equal the definition computed in plain Python, lie in [0, 1], MRECALL@k = "
        "1 exactly when Recall@k·m ≥ min(k, m), Recall@k is monotone in k")
@CI
@given(case=cases())
def test_metrics_equal_the_definition_and_stay_in_bounds(case: tuple[np.ndarray, list, int]) -> None:
    ranking, nested, k = case
    targets = Targets.from_nested(nested)
    mrec, rec = mrecall_at_k(ranking, targets, k), recall_at_k(ranking, targets, k)
    hand_m, hand_r = by_hand(ranking, nested, k)
    assert mrec.tolist() == hand_m
    assert np.allclose(rec, hand_r)
    assert ((0 <= mrec) & (mrec <= 1)).all() and ((0 <= rec) & (rec <= 1)).all()
    m = targets.n_clusters
    # MRECALL@k from Recall@k: 1 exactly when Recall@k · m ≥ min(k, m); so Recall@k = 1 ⇒ MRECALL@k = 1 and
    # MRECALL@k = 1 ⇒ Recall@k ≥ min(k, m) / m; with k ≥ m, MRECALL@k ≤ Recall@k.
    assert (mrec == (np.round(rec * m) >= np.minimum(k, m))).all()
    assert (mrec[rec == 1.0] == 1).all()
    assert (rec[mrec == 1] >= np.minimum(k, m)[mrec == 1] / m[mrec == 1] - 1e-12).all()
    assert (mrec[k >= m] <= rec[k >= m] + 1e-12).all()
    if k > 1:  # monotone in k
        assert (recall_at_k(ranking, targets, k - 1) <= rec + 1e-12).all()


@robust(case="a ranking listing a document twice; answer clusters given in another order (hypothesis)",
        outcome="the metrics do not change: a repeat counts once, cluster order is irrelevant")
@CI
@given(case=cases(), seed=st.integers(0, 2**31 - 1))
def test_metrics_ignore_cluster_order_and_duplicate_ids(case: tuple[np.ndarray, list, int], seed: int) -> None:
    ranking, nested, k = case
    rng = np.random.default_rng(seed)
    base = (mrecall_at_k(ranking, Targets.from_nested(nested), k), recall_at_k(ranking, Targets.from_nested(nested), k))
    shuffled = [[clusters[i] for i in rng.permutation(len(clusters))] for clusters in nested]
    got = (mrecall_at_k(ranking, Targets.from_nested(shuffled), k), recall_at_k(ranking, Targets.from_nested(shuffled),
                                                                                   k))
    assert all(np.array_equal(a, b) for a, b in zip(base, got, strict=True))
    # a document listed twice counts once: blanking every repeat (-1) changes nothing
    dedup = ranking.copy()
    for row in dedup:
        seen: set[int] = set()
        for j, d in enumerate(row.tolist()):
            if d >= 0 and d in seen:
                row[j] = -1
            seen.add(d)
    targets = Targets.from_nested(nested)
    assert np.array_equal(mrecall_at_k(dedup, targets, k), base[0])
    assert np.array_equal(recall_at_k(dedup, targets, k), base[1])
