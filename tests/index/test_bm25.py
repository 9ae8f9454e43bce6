"""bench/index/bm25.py: BM25 on bm25s, checked against scores computed by hand on tiny corpora."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bench.data.task import Corpus
from bench.errors import BenchError
from bench.index.bm25 import BM25Index, BM25Params, bm25_cache_key, load_or_build_bm25, top_k

PLAIN = BM25Params(k1=1.2, b=0.75, stopwords="none", stemmer="none")
DOCS = ["apple banana", "apple apple cherry", "banana split", "zzz"]


def lucene(tf: int, df: int, n: int, dl: float, avgdl: float, k1: float = 1.2, b: float = 0.75) -> float:
    idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
    return idf * tf / (tf + k1 * (1 - b + b * dl / avgdl))


class _Source:
    def __init__(self, docs: list[tuple[str, str, str]]) -> None:
        self.docs = docs

    def iter_documents(self):
        yield from self.docs


def _corpus(docs: list[tuple[str, str, str]], fingerprint: str) -> Corpus:
    return Corpus(ids=[d[0] for d in docs], fingerprint=fingerprint, source=_Source(docs))


def test_scores_match_hand_computed_lucene_bm25():
    ix = BM25Index.from_texts(DOCS, PLAIN)
    avgdl = (2 + 3 + 2 + 1) / 4
    scores, rows = ix.search(["apple"], 3)
    assert rows.tolist() == [[1, 0, -1]]  # doc 1 has tf 2; docs without the term are not candidates
    assert scores[0, 0] == pytest.approx(lucene(2, 2, 4, 3, avgdl), rel=1e-6)
    assert scores[0, 1] == pytest.approx(lucene(1, 2, 4, 2, avgdl), rel=1e-6)
    assert scores[0, 2] == -np.inf
    both = ix.scores("banana cherry")
    assert both[1] == pytest.approx(lucene(1, 1, 4, 3, avgdl), rel=1e-6)
    assert both[3] == 0.0


def test_ties_break_by_lower_row_and_padding():
    ix = BM25Index.from_texts(DOCS, PLAIN)
    # "banana" has the same tf and length in rows 0 and 2: the same score, row 0 first
    scores, rows = ix.search(["banana", "unknownword"], 2)
    assert rows.tolist() == [[0, 2], [-1, -1]]
    assert scores[0, 0] == scores[0, 1]
    assert np.isneginf(scores[1]).all()
    assert scores.dtype == np.float32 and rows.dtype == np.int64


def test_top_k_keeps_lowest_rows_among_ties_at_the_cut():
    s = np.array([0.5, 1.0, 0.5, 0.5, 2.0], dtype=np.float32)
    vals, rows = top_k(s, 3)
    assert rows.tolist() == [4, 1, 0]
    assert vals.tolist() == [2.0, 1.0, 0.5]


def test_stemming_and_stopwords_are_parameters():
    stemmed = BM25Index.from_texts(["the runners were running", "a cat"], BM25Params())
    assert "run" in stemmed.vocabulary and "the" not in stemmed.vocabulary
    assert stemmed.search(["run"], 1)[1].tolist() == [[0]]
    plain = BM25Index.from_texts(["the runners were running", "a cat"], PLAIN)
    assert "the" in plain.vocabulary and "run" not in plain.vocabulary
    assert plain.search(["run"], 1)[1].tolist() == [[-1]]


def test_term_statistics_for_feedback():
    ix = BM25Index.from_texts(DOCS, PLAIN)
    voc = ix.vocabulary
    df = ix.document_frequencies
    assert df[voc["apple"]] == 2 and df[voc["banana"]] == 2 and df[voc["cherry"]] == 1
    assert ix.doc_lengths.tolist() == [2, 3, 2, 1]
    terms, tf, weights = ix.doc_terms(1)
    got = {ix.term(int(t)): (f, w) for t, f, w in zip(terms, tf, weights, strict=True)}
    assert set(got) == {"apple", "cherry"}
    assert got["apple"][0] == 2 and got["cherry"][0] == 1
    assert got["apple"][1] == pytest.approx(lucene(2, 2, 4, 3, 2.0), rel=1e-6)
    assert ix.idf()[voc["cherry"]] == pytest.approx(math.log(1 + 3.5 / 1.5))
    with pytest.raises(BenchError, match="row 9"):
        ix.doc_terms(9)


def test_weighted_search_is_the_weighted_sum_of_term_scores():
    ix = BM25Index.from_texts(DOCS, PLAIN)
    voc = ix.vocabulary
    s, r = ix.search_weighted([{voc["apple"]: 1.0, voc["split"]: 3.0}], 4)
    by_row = dict(zip(r[0].tolist(), s[0].tolist(), strict=True))
    assert by_row[2] == pytest.approx(3 * ix.scores("split")[2], rel=1e-6)
    assert by_row[1] == pytest.approx(ix.scores("apple")[1], rel=1e-6)
    assert r[0].tolist() == [2, 1, 0, -1]
    with pytest.raises(BenchError, match="vocabulary"):
        ix.search_weighted([{10_000: 1.0}], 2)


def test_cache_roundtrip_and_key(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path))
    docs = [(str(i), f"title {i}", t) for i, t in enumerate(DOCS)]
    corpus = _corpus(docs, "fp-1")
    built = load_or_build_bm25(corpus, PLAIN)
    assert built.path is not None and (built.path / "bench_meta.json").is_file()
    # a second call must not stream the corpus again
    corpus.source = None
    loaded = load_or_build_bm25(corpus, PLAIN)
    np.testing.assert_array_equal(loaded.search(["apple"], 4)[1], built.search(["apple"], 4)[1])
    np.testing.assert_allclose(loaded.search(["apple"], 4)[0], built.search(["apple"], 4)[0])
    assert loaded.describe()["k1"] == 1.2 and loaded.describe()["corpus_fingerprint"] == "fp-1"
    assert bm25_cache_key("fp-1", PLAIN) != bm25_cache_key("fp-2", PLAIN)
    assert bm25_cache_key("fp-1", PLAIN) != bm25_cache_key("fp-1", BM25Params())
    assert not list((tmp_path / "bm25").glob("*.tmp"))  # no temp folder left
    from bench.storage.cache import verify_entry

    assert verify_entry(built.path) is None  # a verified entry: manifest with every file's checksum


def test_title_is_indexed_with_the_text(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path))
    corpus = _corpus([("a", "Paris", "capital city"), ("b", "", "a river")], "fp-title")
    ix = load_or_build_bm25(corpus, PLAIN, cache=False)
    assert ix.search(["paris"], 2)[1].tolist() == [[0, -1]]


def test_bad_parameters_are_errors():
    with pytest.raises(BenchError, match="b must"):
        BM25Index.from_texts(DOCS, BM25Params(b=2.0))
    with pytest.raises(BenchError, match="stemmer"):
        BM25Index.from_texts(DOCS, BM25Params(stemmer="klingon"))
    with pytest.raises(BenchError, match="k must"):
        BM25Index.from_texts(DOCS, PLAIN).search(["apple"], 0)


# ------------------------------------------------------------------ the bounded build equals bm25s's own, exactly


def _texts_and_queries(shared_data, which: str) -> tuple[list[str], list[str]]:
    import json

    from bench.data.corpus import document_text, open_corpus, read_queries

    if which == "limit-small":
        reader = open_corpus(shared_data / "limit-small" / "corpus.jsonl")
        queries = read_queries(shared_data / "limit-small" / "queries.jsonl").texts
    else:
        path = shared_data / "wiki-vital" / "summaries_en-us.json"
        reader = open_corpus(path)
        queries = [rec.get("description") or rec["title"] for rec in json.loads(path.read_bytes()).values()]
    return [document_text(t, x) for _, t, x in reader.iter_documents()], queries


@pytest.mark.slow
@pytest.mark.parametrize("which", ["limit-small", "wiki-vital"])
def test_bounded_build_gives_todays_scores_and_rankings_for_every_query(shared_data, tmp_path, monkeypatch, which):
    """The index built in chunks on disk (small chunks and blocks, so that both passes really merge) against bm25s's
    in-memory build of today: the same sparse arrays, and for every query the same scores and the same rows."""
    from bench.index.bm25 import build_on_disk

    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path / "cache"))
    texts, queries = _texts_and_queries(shared_data, which)
    params = BM25Params()
    today = BM25Index.from_texts(texts, params)
    build_on_disk(iter(texts), tmp_path / "ix", params, n_docs=len(texts), chunk_tokens=3_000, block_postings=20_000)
    bounded = BM25Index.load(tmp_path / "ix")
    corpus = _corpus([(str(i), "", t) for i, t in enumerate(texts)], f"fp-{which}")
    cached = load_or_build_bm25(corpus, params)  # the cache's path, default chunk sizes
    for ix in (bounded, cached):
        for key in ("data", "indices", "indptr"):
            np.testing.assert_array_equal(np.asarray(ix.model.scores[key]), np.asarray(today.model.scores[key]))
        assert ix.model.vocab_dict == today.model.vocab_dict and ix.n_docs == today.n_docs
        np.testing.assert_array_equal(np.asarray(ix.doc_lengths), today.doc_lengths)
    k = 100
    want_s, want_r = today.search(queries, k)
    for ix in (bounded, cached):
        got_s, got_r = ix.search(queries, k)
        np.testing.assert_array_equal(got_r, want_r)
        np.testing.assert_array_equal(got_s, want_s)
    assert len(queries) >= 1000 and (want_r[:, 0] >= 0).mean() > 0.9


@pytest.mark.parametrize("method", ["robertson", "atire", "bm25l", "bm25+"])
def test_bounded_build_matches_every_scoring_method(tmp_path, method):
    from bench.index.bm25 import build_on_disk

    texts = [f"{DOCS[i % 4]} {'extra ' * (i % 3)}word{i % 5}" for i in range(40)] + ["", "the of and"]
    params = BM25Params(method=method, k1=1.2, b=0.75)
    today = BM25Index.from_texts(texts, params)
    build_on_disk(iter(texts), tmp_path / "ix", params, n_docs=len(texts), chunk_tokens=7, block_postings=5)
    ix = BM25Index.load(tmp_path / "ix")
    for key in ("data", "indices", "indptr"):
        np.testing.assert_array_equal(np.asarray(ix.model.scores[key]), np.asarray(today.model.scores[key]))
    if method in ("bm25l", "bm25+"):
        np.testing.assert_array_equal(ix.model.nonoccurrence_array, today.model.nonoccurrence_array)
    for q in ("apple", "banana cherry", "word3 extra", "zzz"):
        np.testing.assert_array_equal(ix.scores(q), today.scores(q))
    assert not (tmp_path / "ix" / "build").exists()  # the first pass's chunk files are gone


def test_bounded_build_refuses_a_short_stream(tmp_path):
    from bench.index.bm25 import build_on_disk

    with pytest.raises(BenchError, match="gave 2 documents, expected 3"):
        build_on_disk(iter(["a b", "c"]), tmp_path / "ix", PLAIN, n_docs=3)
