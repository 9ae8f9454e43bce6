"""`bench run --retriever minilm --task limit-small`, offline on CPU, checked against an independent recomputation.

The independent side uses only sentence-transformers and numpy: it reads the LIMIT files itself, embeds documents and
queries with `SentenceTransformer.encode`, ranks by cosine with a numpy sort (ties to the lower document row, as the
harness does), and computes MRECALL@k and Recall@k from the qrels.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pytest

from bench.cli import main
from bench.data.task import build_task
from bench.errors import BenchError
from bench.results.record import RunResult, load_run
from bench.systems.retriever import build_retriever
from bench.systems.session import Session
from retrievers.dense import DenseModel, minilm_path
from tests.support import SHARED_DATA

pytestmark = pytest.mark.slow

KS = (2, 10, 20)  # limit-small's default cutoffs (the LIMIT paper's on the small set)


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> tuple[RunResult, Path]:
    out = tmp_path_factory.mktemp("results")
    code = main(["run", "--retriever", "minilm", "--task", "limit-small", "--results-dir", str(out)])
    assert code == 0
    (path,) = sorted(out.glob("limit-small/minilm/*.json"))
    return load_run(path), path


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.fixture(scope="module")
def independent() -> dict:
    from sentence_transformers import SentenceTransformer

    folder = SHARED_DATA / "limit-small"
    assert folder.is_dir(), f"real data folder {folder} is missing: clone the project with ../shared beside it"
    docs = read_jsonl(folder / "corpus.jsonl")
    queries = read_jsonl(folder / "queries.jsonl")
    relevant: dict[str, set[int]] = defaultdict(set)
    row = {d["_id"]: i for i, d in enumerate(docs)}
    for rel in read_jsonl(folder / "qrels.jsonl"):
        if rel["score"] > 0:
            relevant[rel["query-id"]].add(row[rel["corpus-id"]])
    model = SentenceTransformer(minilm_path(), device="cpu")
    d = model.encode([(doc["title"] + " " + doc["text"]).strip() for doc in docs], batch_size=32)
    q = model.encode([query["text"] for query in queries], batch_size=32)
    d = d / np.linalg.norm(d, axis=1, keepdims=True)
    q = q / np.linalg.norm(q, axis=1, keepdims=True)
    sims = q @ d.T
    rows = np.broadcast_to(np.arange(len(docs)), sims.shape)
    ranking = np.lexsort((rows, -sims), axis=1)[:, : max(KS)]  # best first, ties to the lower row
    per_query: dict[str, list[float]] = {f"{m}@{k}": [] for m in ("MRECALL", "Recall") for k in KS}
    qids = [query["_id"] for query in queries if relevant[query["_id"]]]
    index = {query["_id"]: i for i, query in enumerate(queries)}
    for qid in qids:
        gold = relevant[qid]
        for k in KS:
            hits = len(gold & set(ranking[index[qid], :k].tolist()))
            m = len(gold)
            per_query[f"MRECALL@{k}"].append(float(hits == m) if k >= m else float(hits >= k))
            per_query[f"Recall@{k}"].append(hits / m)
    return {"query_ids": qids, "per_query": per_query, "ranking": ranking, "doc_ids": [d["_id"] for d in docs],
            "index": index}


def test_reports_mrecall_and_recall_at_2_10_100(harness: tuple[RunResult, Path]) -> None:
    result, _ = harness
    assert set(result.summary) == {f"{m}@{k}" for m in ("MRECALL", "Recall") for k in KS}
    assert result.task == "limit-small" and result.retriever == "minilm" and len(result.query_ids) == 1000
    info = result.retriever_info
    assert info["model_id"] == "sentence-transformers/all-MiniLM-L6-v2" and info["weights_sha256"]
    assert info["device"] == "cpu" and info["dtype"] == "float32"
    assert result.corpus_size == 46


def test_numbers_equal_an_independent_recomputation(harness: tuple[RunResult, Path], independent: dict) -> None:
    result, _ = harness
    assert result.query_ids == independent["query_ids"]
    for name, values in independent["per_query"].items():
        assert result.per_query[name] == values, name
        assert result.summary[name] == pytest.approx(float(np.mean(values)), abs=0, rel=0)
    # MRECALL@2 is the hard cutoff of LIMIT: a single vector rarely ranks both people first
    assert result.summary["MRECALL@2"] < 0.2


def test_rankings_equal_the_independent_ranking(harness: tuple[RunResult, Path], independent: dict) -> None:
    _, path = harness
    ranked: dict[str, list[str]] = defaultdict(list)
    for line in path.with_suffix(".trec").read_text().splitlines():
        parts = line.split()  # qid Q0 docid rank score tag; LIMIT's ids are names, their spaces percent-encoded
        assert len(parts) == 6
        ranked[unquote(parts[0])].append(unquote(parts[2]))
    doc_ids = independent["doc_ids"]
    for qid in independent["query_ids"]:
        expected = [doc_ids[r] for r in independent["ranking"][independent["index"][qid]]]
        assert ranked[qid] == expected, qid


def test_rerun_encodes_nothing(harness: tuple[RunResult, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """Same task and encoder again (a new session, as a new command would): the corpus comes from the cache."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the corpus was encoded again")

    monkeypatch.setattr(DenseModel, "encode", refuse)
    monkeypatch.setattr(DenseModel, "model", refuse)
    data = build_task("limit-small").load()
    emb, index, space = Session(device="cpu").corpus_index(data, build_retriever("minilm"))
    assert index.ntotal == 46 and emb.shape == (46, 384) and space == harness[0].retriever_info["doc_space"]


def test_other_k_and_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["run", "--retriever", "minilm", "--task", "limit-small", "-t", f"data_dir={tmp_path}",
                 "--results-dir", str(tmp_path / "r")])
    assert code == 2
    assert "no corpus.jsonl or corpus.tsv" in capsys.readouterr().err
    with pytest.raises(BenchError, match="trust_remote_code"):
        build_retriever("nv-embed", {"model_path": minilm_path()})
