"""The `bm25` retriever: a ranking retriever on bench/index/bm25.py, on real LIMIT-small and on a tiny BEIR folder where
every query has one answer (where `bench compare` must compare the whole set)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.cli import main
from bench.data.task import build_task
from bench.evaluate import evaluate_named
from bench.index.bm25 import BM25Params, load_or_build_bm25
from bench.registry import register_expander
from bench.systems.session import Session
from bench.systems.stages import Expander


def test_limit_small_near_the_published_bm25(shared_data: Path, tmp_path: Path) -> None:
    """LIMIT's paper: BM25 recall@2 97.8, recall@10 100 on LIMIT-small. The run keeps BM25's own scores."""
    params = [f"data_dir={shared_data / 'limit-small'}"]
    rec, path = evaluate_named("limit-small", "bm25", (2, 10), task_params=params, results_dir=tmp_path,
                    session=Session(device="cpu"))
    assert 0.95 <= rec.summary["Recall@2"] <= 1.0
    assert rec.summary["Recall@10"] == 1.0
    assert rec.retriever_info["produces"] == "ranking" and rec.retriever_info["index"]["k1"] == 0.9
    assert "corpus_index" not in rec.timings  # no FAISS index, no embeddings for a lexical system
    # the ranking and scores are bm25s's, through bench/index/bm25.py
    data = build_task("limit-small", params).load()
    index = load_or_build_bm25(data.corpus, BM25Params())
    split = data.split("test")
    scores, rows = index.search(split.texts[:5], 10)
    lines = path.with_suffix(".trec").read_text().splitlines()
    first = [ln.split() for ln in lines if ln.split()[0] == rec.query_ids[0]]
    from bench.results.record import trec_id

    assert [f[2] for f in first] == [trec_id(data.corpus.ids[r]) for r in rows[0] if r >= 0]
    assert [float(f[4]) for f in first] == pytest.approx(scores[0][rows[0] >= 0].tolist(), rel=1e-6)


def _one_answer_folder(root: Path) -> Path:
    docs = {"d1": "red apples grow on trees", "d2": "green pears are sweet", "d3": "blue cars drive fast",
            "d4": "yellow bananas are long", "d5": "old trees shade the garden", "d6": "fast trains cross hills"}
    queries = {"q1": "which apples are red", "q2": "sweet pears", "q3": "fast blue cars", "q4": "long bananas",
               "q5": "trains over hills"}
    qrels = {"q1": "d1", "q2": "d2", "q3": "d3", "q4": "d4", "q5": "d6"}
    root.mkdir(parents=True)
    (root / "corpus.jsonl").write_text("".join(json.dumps({"_id": k, "title": "", "text": v}) + "\n"
                                               for k, v in docs.items()))
    (root / "queries.jsonl").write_text("".join(json.dumps({"_id": k, "text": v}) + "\n" for k, v in queries.items()))
    (root / "qrels.jsonl").write_text("".join(json.dumps({"query-id": q, "corpus-id": d, "score": 1}) + "\n"
                                              for q, d in qrels.items()))
    return root


def test_compare_on_a_task_where_every_query_has_one_answer(tmp_path: Path, capsys) -> None:
    folder = _one_answer_folder(tmp_path / "beir")
    res = tmp_path / "results"
    base = ["--task", "beir", "-t", f"data_dir={folder}", "--k", "1,2", "--results-dir", str(res)]
    assert main(["run", *base, "--retriever", "bm25,bm25[k1=2.0,b=0.9,stemmer=none]"]) == 0
    for baseline in ("bm25", "minilm"):  # lexical runs only (no target diversity), then with a dense run (NaN)
        if baseline == "minilm":
            assert main(["run", *base, "--retriever", "minilm"]) == 0
        capsys.readouterr()
        assert main(["compare", "--task", "beir", "--results-dir", str(res), "--baseline", baseline,
                     "--format", "json"]) == 0
        doc = json.loads(capsys.readouterr().out)
        assert list(doc["subsets"]) == ["all"], baseline  # the whole set, no low-similarity subset
        assert any("every query has one answer" in n for n in doc["notes"]), doc["notes"]
        assert "bm25[k1=2.0,b=0.9,stemmer=none]" in doc["systems"]
        capsys.readouterr()
        assert main(["compare", "--task", "beir", "--results-dir", str(res), "--bins"]) == 2
        assert "two or more answers" in capsys.readouterr().err


def test_lexical_refusals(tmp_path: Path, shared_data: Path, capsys) -> None:
    base = ["run", "--task", "limit-small", "-t", f"data_dir={shared_data / 'limit-small'}", "--results-dir",
            str(tmp_path)]
    for args, msg in ((["--retriever", "bm25", "--rerank", "mmr"], "needs document embeddings"),
                      (["--retriever", "bm25", "--fusion", "rrf"], "needs several lists per query"),
                      (["--retriever", "bm25[k1=-1]"], "k1 must be")):
        capsys.readouterr()
        assert main([*base, *args]) == 2, args
        err = capsys.readouterr().err
        assert msg in err and "Traceback" not in err, err
    assert not list(tmp_path.glob("limit-small/*/*.json"))  # refused before anything ran


@register_expander("test-repeat", description="tests only: query i becomes 1 + i % 2 copies of itself")
class RepeatExpander(Expander):
    def expand(self, texts, split, ctx):  # type: ignore[no-untyped-def]
        return [[t] * (1 + i % 2) for i, t in enumerate(texts)]


def test_expanded_texts_flow_through_dense_and_lexical_retrievers(tmp_path: Path) -> None:
    """An expander's texts (a varying number per query) are encoded by minilm / searched by bm25 one by one, and
    fused per query: copies of the query fused by RRF or CombSUM rank exactly like the query alone."""
    folder = _one_answer_folder(tmp_path / "beir")
    session = Session(device="cpu")
    params = [f"data_dir={folder}"]
    for plain, expanded in (("bm25", "bm25+test-repeat@rrf"), ("minilm", "minilm+test-repeat@combsum")):
        a, pa = evaluate_named("beir", plain, (1, 3), task_params=params, results_dir=tmp_path, session=session)
        b, pb = evaluate_named("beir", expanded, (1, 3), task_params=params, results_dir=tmp_path, session=session)
        assert b.system == expanded and b.retriever_info["m"] == 2
        assert a.per_query == b.per_query

        def order(path: Path) -> list[tuple[str, str]]:
            return [(ln.split()[0], ln.split()[2]) for ln in path.with_suffix(".trec").read_text().splitlines()]

        assert order(pa) == order(pb)


def test_one_session_encodes_the_queries_of_a_dense_retriever_once(tmp_path: Path, monkeypatch) -> None:
    from retrievers.dense import DenseRetriever

    folder = _one_answer_folder(tmp_path / "beir")
    calls: list[int] = []
    original = DenseRetriever.encode_queries

    def counting(self, split, ctx):  # type: ignore[no-untyped-def]
        calls.append(len(split))
        return original(self, split, ctx)

    monkeypatch.setattr(DenseRetriever, "encode_queries", counting)
    session = Session(device="cpu")
    a, _ = evaluate_named("beir", "minilm", (1,), task_params=[f"data_dir={folder}"], results_dir=tmp_path,
        session=session)
    b, _ = evaluate_named("beir", "minilm+mmr(λ=0.5)", (1,), task_params=[f"data_dir={folder}"], results_dir=tmp_path,
               session=session)
    assert calls == [5] and b.system == "minilm+mmr(λ=0.5)"
