"""The pipeline as stages, end to end: round-robin through the seam equals the pre-stage pipeline on a stored run,
systems are stored and compared as their own rows, every printed name re-runs to the same result, and the
refusals (`--retriever ","`, MMR without document vectors, fusion with one list) are one clear line."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np
import pytest

from bench.cli import main
from bench.data.task import Split, build_task
from bench.evaluate import evaluate_named
from bench.index import FlatIndex
from bench.registry import register_retriever
from bench.results.record import find_runs, load_run
from bench.systems.context import RunContext
from bench.systems.fusion.round_robin import RoundRobinFuser
from bench.systems.pipeline import search_lists
from bench.systems.records import QueryVectors
from bench.systems.retriever import VectorRetriever
from bench.systems.session import Session

STORED = Path(__file__).resolve().parents[1] / "support" / "round_robin_synthetic_run.npz"
TASK = "synthetic-linear-multi"
SMALL = ["-t", "d=32", "-t", "n_train=60", "-t", "n_test=50", "-t", "n_negatives=1500"]


def _stored() -> tuple[dict, np.ndarray, np.ndarray, str]:
    """A run made by the pipeline before stages existed (search_and_merge, round-robin hard-wired): the AMER query
    vectors (60 queries × 5 vectors) and the ranking it produced, with the task parameters and corpus hash."""
    z = np.load(STORED)
    return ast.literal_eval(str(z["task_params"])), z["query_vectors"], z["ranking"], str(z["corpus_hash"])


@register_retriever("test-stored-amer-vectors", description="the stored AMER vectors (tests only)", kind="test")
class StoredVectors(VectorRetriever):
    def encode_queries(self, split: Split, ctx: RunContext) -> np.ndarray:
        return _stored()[1]


def test_round_robin_through_the_seam_equals_the_stored_pre_stage_run(tmp_path: Path) -> None:
    params, qvecs, ranking, corpus_hash = _stored()
    data = build_task("synthetic-mlp-multi", params).load()
    assert data.corpus.fingerprint == corpus_hash
    index = FlatIndex.from_embeddings(data.corpus.vectors, device="cpu")
    lists = search_lists(index, QueryVectors.dense(qvecs), 100)
    fused = RoundRobinFuser(None, "round-robin").fuse(lists, 100)
    assert np.array_equal(fused.rows, ranking)
    fused.check()
    # and through the whole pipeline: the TREC file lists the same documents in the same order
    rec, path = evaluate_named("synthetic-mlp-multi", "test-stored-amer-vectors", (100,), task_params=params,
                    results_dir=tmp_path, session=Session(device="cpu"))
    lines = path.with_suffix(".trec").read_text().splitlines()
    by_query: dict[str, list[str]] = {}
    for line in lines:
        qid, _, doc, _, _, _ = line.split()
        by_query.setdefault(qid, []).append(doc)
    expect = {qid: [data.corpus.ids[r] for r in row if r >= 0] for qid, row in zip(rec.query_ids, ranking,
                                                                                      strict=True)}
    assert by_query == expect
    assert rec.system == "test-stored-amer-vectors" and rec.retriever_info["m"] == 5


@pytest.fixture(scope="module")
def systems_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("systems")
    assert main(["run", "--task", TASK, "--retriever", "input,input+mmr(λ=0.5),oracle,oracle@rrf,oracle@sum",
                 "--k", "10,100", "--results-dir", str(root), *SMALL]) == 0
    assert main(["run", "--task", TASK, "--retriever", "input", "--rerank", "mmr", "-r", "mmr.grid=0.5,0.9",
                 "--k", "10,100", "--results-dir", str(root), *SMALL]) == 0
    # the README's ablation: amer and amer[sampling=teacher] must be two systems, not one overwriting the other
    assert main(["run", "--task", TASK, "--retriever", "amer,amer[sampling=teacher]", "-r", "amer.steps=20",
                 "-r", "eval_every=10", "-r", "width=32", "--k", "10,100", "--results-dir", str(root), *SMALL]) == 0
    return root


def test_each_system_has_its_own_folder_record_and_real_scores(systems_run: Path) -> None:
    folders = sorted(p.name for p in (systems_run / TASK).iterdir())
    # names made of portable characters are their own folder; others (λ) get a slug and a hash of the exact name
    slug = next(f for f in folders if f.startswith("input+mmr(_=0.5)-"))
    assert len(slug) == len("input+mmr(_=0.5)-") + 8
    recs = {load_run(p).system: load_run(p) for p in find_runs(systems_run, TASK)}
    amer = [name for name in recs if name.startswith("amer")]
    assert len(amer) == 2 and sum("sampling=teacher" in name for name in amer) == 1
    assert sorted(set(folders) - {slug}) == sorted(["input", "input+mmr(grid=(0.5,0.9))", "oracle", "oracle@combsum",
                                                    "oracle@rrf", *amer])
    assert set(recs) == {"input", "input+mmr(λ=0.5)", "input+mmr(grid=(0.5,0.9))", "oracle", "oracle@rrf",
                         "oracle@combsum", *amer}
    plain, teacher = sorted(amer, key=lambda n: "teacher" in n)
    assert teacher == plain[:-1] + ",sampling=teacher]" or "sampling=teacher" in teacher
    assert recs[plain].retriever_params["sampling"] == "scheduled"
    assert recs[teacher].retriever_params["sampling"] == "teacher"
    tuned = recs["input+mmr(grid=(0.5,0.9))"]
    tuning = tuned.extra["rerank"][0]["tuning"]
    assert tuning["split"].startswith("train") and set(tuning["grid"]) == {"0.5", "0.9"}
    assert tuned.extra["rerank"][0]["lambda"] in (0.5, 0.9)
    assert [s["kind"] for s in tuned.stages] == ["retriever", "reranker"]
    # the TREC file carries the fused scores: RRF scores are sums of 1/(60 + rank)
    trec = next((systems_run / TASK / "oracle@rrf").glob("*.trec")).read_text().splitlines()
    first = float(trec[0].split()[4])
    assert 1 / 61 <= first <= 5 / 61
    plain = next((systems_run / TASK / "input").glob("*.trec")).read_text().splitlines()
    assert -1.0 <= float(plain[0].split()[4]) <= 1.0 + 1e-6  # a cosine, not depth − rank


def test_compare_shows_every_system_and_each_name_reruns_to_the_same_result(systems_run: Path, tmp_path: Path,
                                                                             capsys) -> None:
    capsys.readouterr()
    assert main(["compare", "--task", TASK, "--results-dir", str(systems_run), "--baseline", "input",
                 "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    names = doc["systems"]
    assert len(names) == 8 and names[0] == "input"
    stored = {load_run(p).system: load_run(p) for p in find_runs(systems_run, TASK)}
    for name in names:
        assert main(["run", "--task", TASK, "--retriever", name, "--k", "10,100", "--results-dir", str(tmp_path),
                     *SMALL]) == 0
        again = [load_run(p) for p in find_runs(tmp_path, TASK, name)]
        assert len(again) == 1, name
        assert again[0].system == name
        assert again[0].per_query == stored[name].per_query, name
    capsys.readouterr()
    assert main(["compare", "--task", TASK, "--results-dir", str(systems_run), "--baseline", "input"]) == 0
    table = capsys.readouterr().out
    printed = [line.split("│")[1].strip().removesuffix(" (baseline)") for line in table.splitlines()
               if line.startswith("│")]
    # the main table and the query-side cost table each print every name whole ([…] is not markup)
    assert sorted(printed) == sorted(names * 2)
    amer = next(n for n in names if n.startswith("amer[") and "teacher" not in n)
    capsys.readouterr()
    assert main(["compare", "--task", TASK, "--results-dir", str(systems_run), "--baseline", amer]) == 0
    assert f"baseline A = {amer}" in capsys.readouterr().out.replace("\n", " ")


def test_refusals_are_one_line(tmp_path: Path, capsys) -> None:
    cases = [
        (["--retriever", ","], "names no retriever"),
        (["--retriever", "input", "--fusion", "rrf"], "needs several lists per query"),
        (["--retriever", "amer", "-r", "amer.stepz=3"], "retriever amer: unknown parameter 'stepz'"),
        (["--retriever", "input", "-r", "nosuch=3"], "unknown parameter 'nosuch'"),
        (["--retriever", "input", "--expand", "nosuch"], "unknown expander"),
        (["--retriever", "input", "--llm-model", "x"], "no system uses one"),
    ]
    for args, msg in cases:
        capsys.readouterr()
        code = main(["run", "--task", TASK, *args, "--results-dir", str(tmp_path), *SMALL])
        err = capsys.readouterr().err
        assert code == 2, args
        assert msg in err and "Traceback" not in err, (args, err)


def test_old_result_files_keep_loading_as_their_retriever(tmp_path: Path, systems_run: Path) -> None:
    src = find_runs(systems_run, TASK, "oracle")[-1]
    old = json.loads(src.read_text())
    for key in ("system", "stages"):
        old.pop(key)
    old["schema_version"] = 1
    dest = tmp_path / TASK / "oracle" / "20200101T000000000Z-old.json"
    dest.parent.mkdir(parents=True)
    dest.write_text(json.dumps(old))
    rec = load_run(dest)
    assert rec.system == "oracle" and rec.stages == []


def test_mmr_without_validation_queries_cross_fits_on_two_halves(tmp_path: Path) -> None:
    """Evaluating the train split leaves no other queries to tune on: each half is re-ranked with the λ chosen on
    the other half, and both choices are recorded."""
    params = [a for a in SMALL if a != "-t"]
    rec, _ = evaluate_named(TASK, "input+mmr(grid=(0.5,0.9))", (10,), task_params=params, split="train",
        results_dir=tmp_path,
                 session=Session(device="cpu"))
    record = rec.extra["rerank"][0]
    assert "cross-fitting" in record["tuning"]["split"]
    folds = record["tuning"]["folds"]
    assert [f["tuned_on"] for f in folds] == [30, 30] and [f["applied_to"] for f in folds] == [30, 30]
    assert record["lambda"] == [f["lambda"] for f in folds] and all(v in (0.5, 0.9) for v in record["lambda"])
    for f in folds:  # the chosen λ is the largest among the best on its half
        best = max(f["grid"].values())
        assert f["lambda"] == max(float(k) for k, v in f["grid"].items() if v == best)
