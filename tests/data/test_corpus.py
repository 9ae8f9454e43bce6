"""Streaming corpus / queries / qrels readers: what they yield, and one clear error per malformed record."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.data.corpus import (
    JsonlCorpus,
    TsvCorpus,
    WikiSummariesCorpus,
    document_text,
    open_corpus,
    read_qrels,
    read_queries,
)
from bench.errors import BenchError


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def jl(**obj: object) -> str:
    return json.dumps(obj)


def test_jsonl_streams_documents_in_order(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "corpus.jsonl", [jl(_id="a", title="T", text="x"), "", jl(_id=7, text="y")])
    reader = JsonlCorpus(path)
    assert list(reader.iter_documents()) == [("a", "T", "x"), ("7", "", "y")]
    scan = reader.scan()
    assert scan.ids == ["a", "7"]
    assert scan.row_of() == {"a": 0, "7": 1}


def test_fingerprint_follows_content(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "c.jsonl", [jl(_id="a", text="x")])
    first = JsonlCorpus(path).scan().fingerprint
    assert JsonlCorpus(path).scan().fingerprint == first
    write_lines(path, [jl(_id="a", text="x!")])
    assert JsonlCorpus(path).scan().fingerprint != first


@pytest.mark.parametrize(
    ("lines", "line", "needle"),
    [
        ([jl(_id="a", text="x"), '{"_id": "b", "text": '], 2, "not valid JSON"),
        ([jl(_id="a", text="x"), jl(text="y")], 2, "missing field '_id'"),
        ([jl(_id="a", text="x"), jl(_id="b", title="t")], 2, "missing field 'text'"),
        ([jl(_id="a", text="x"), jl(_id="b", text=3)], 2, "field 'text' must be a string"),
        ([jl(_id="a", text="x"), jl(_id="", text="y")], 2, "field '_id' is empty"),
        ([jl(_id="a", text="x"), "[1, 2]"], 2, "expected a JSON object"),
        ([jl(_id="a", text="x"), jl(_id="b", text="y"), jl(_id="a", text="z")], 3,
         "field '_id': duplicate id 'a' (first on line 1)"),
    ],
)
def test_jsonl_errors_name_file_line_and_field(tmp_path: Path, lines: list[str], line: int, needle: str) -> None:
    path = write_lines(tmp_path / "corpus.jsonl", lines)
    with pytest.raises(BenchError) as err:
        JsonlCorpus(path).scan()
    message = str(err.value)
    assert f"{path}, line {line}" in message
    assert needle in message


def test_jsonl_bad_utf8(tmp_path: Path) -> None:
    path = tmp_path / "corpus.jsonl"
    path.write_bytes(jl(_id="a", text="x").encode() + b"\n" + b'{"_id": "b", "text": "\xff"}\n')
    with pytest.raises(BenchError, match=r"line 2: not valid UTF-8"):
        JsonlCorpus(path).scan()


def test_missing_file_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(BenchError, match="no such file"):
        JsonlCorpus(tmp_path / "nope.jsonl").scan()


def test_tsv_dpr_format_with_header_and_quotes(tmp_path: Path) -> None:
    path = tmp_path / "psgs.tsv"
    path.write_text('id\ttext\ttitle\n1\t"Aaron ( or ; ""Ahärôn"") is"\tAaron\n2\tplain text\tB\n', encoding="utf-8")
    reader = TsvCorpus(path)
    assert list(reader.iter_documents()) == [("1", "Aaron", 'Aaron ( or ; "Ahärôn") is'), ("2", "B", "plain text")]
    assert reader.scan().ids == ["1", "2"]
    assert isinstance(open_corpus(path), TsvCorpus)


def test_tsv_errors(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "p.tsv", ["1\tt\tT", "2\tonly two"])
    with pytest.raises(BenchError, match=r"p.tsv, line 2: expected 3 tab-separated fields"):
        TsvCorpus(path).scan()
    path = write_lines(tmp_path / "q.tsv", ["1\tt\tT", "1\tu\tU"])
    with pytest.raises(BenchError, match=r"q.tsv, line 2: field 'id': duplicate id '1'"):
        TsvCorpus(path).scan()
    path = write_lines(tmp_path / "r.tsv", ["1\tt\tT", "\tu\tU"])
    with pytest.raises(BenchError, match=r"r.tsv, line 2: field 'id' is empty"):
        TsvCorpus(path).scan()


def test_queries_and_qrels(tmp_path: Path) -> None:
    q = read_queries(write_lines(tmp_path / "queries.jsonl", [jl(_id="q1", text="who?"), jl(_id="q2", text="what?")]))
    assert (q.ids, q.texts) == (["q1", "q2"], ["who?", "what?"])
    rels = read_qrels(write_lines(tmp_path / "qrels.jsonl", [jl(**{"query-id": "q1", "corpus-id": "a", "score": 1})]))
    assert [(r.query_id, r.doc_id, r.score, r.line) for r in rels] == [("q1", "a", 1.0, 1)]
    tsv = write_lines(tmp_path / "test.tsv", ["query-id\tcorpus-id\tscore", "q1\ta\t1", "q2\tb\t0"])
    rows = [(r.query_id, r.doc_id, r.score, r.line) for r in read_qrels(tsv)]
    assert rows == [("q1", "a", 1.0, 2), ("q2", "b", 0.0, 3)]


def test_queries_and_qrels_errors(tmp_path: Path) -> None:
    with pytest.raises(BenchError, match=r"queries.jsonl, line 2: field '_id': duplicate id 'q1'"):
        read_queries(write_lines(tmp_path / "queries.jsonl", [jl(_id="q1", text="a"), jl(_id="q1", text="b")]))
    with pytest.raises(BenchError, match=r"qrels.jsonl, line 1: missing field 'corpus-id'"):
        read_qrels(write_lines(tmp_path / "qrels.jsonl", [jl(**{"query-id": "q1", "score": 1})]))
    with pytest.raises(BenchError, match=r"qrels.jsonl, line 1: field 'score' must be a number"):
        read_qrels(write_lines(tmp_path / "qrels.jsonl", [jl(**{"query-id": "q1", "corpus-id": "a", "score": "x"})]))
    with pytest.raises(BenchError, match=r"test.tsv, line 2: expected 3 tab-separated fields"):
        read_qrels(write_lines(tmp_path / "test.tsv", ["query-id\tcorpus-id\tscore", "q1\ta"]))


def test_qrels_tsv_that_is_not_tab_separated_says_so(tmp_path: Path) -> None:
    for lines, message in ((["corpus-id,query-id,score", "q1\ta\t1"], r"line 1: not tab-separated: the header "
                                                                      r"'corpus-id,query-id,score'"),
                           (["query-id corpus-id score", "q1\ta\t1"], r"line 1: not tab-separated"),
                           (["corpus-id\tquery-id\tscore", "q1\ta\t1"],
                            r"line 1: the header must be query-id, corpus-id, score\[, cluster\] in that order"),
                           (["q1,a,1"], r"line 1: expected 3 tab-separated fields .*, got 1; the line has no tab")):
        with pytest.raises(BenchError, match=message):
            read_qrels(write_lines(tmp_path / "test.tsv", lines))
    rows = read_qrels(write_lines(tmp_path / "test.tsv", ["qid\tcorpus-id\tscore", "qid7\ta\t1"]))
    assert [(r.query_id, r.line) for r in rows] == [("qid7", 2)]


def test_scan_counts_empty_documents_and_warns_when_all_are(tmp_path: Path, cache: Path,
                                                          capsys: pytest.CaptureFixture) -> None:
    some = write_lines(tmp_path / "some.jsonl", [jl(_id="a", text="x"), jl(_id="b", text="  ", title="")])
    assert JsonlCorpus(some).scan().fingerprint_info["empty_documents"] == 1
    assert "warning" not in capsys.readouterr().err
    empty = write_lines(tmp_path / "empty.jsonl", [jl(_id="a", text=""), jl(_id="b", text=" ", title="\t")])
    for method in ("sha256", "cached"):  # the count is kept with the cached scan: a warm run warns too
        scan = JsonlCorpus(empty).scan()
        assert scan.fingerprint_info["method"] == method and scan.fingerprint_info["empty_documents"] == 2
        err = " ".join(capsys.readouterr().err.split())
        assert f"warning: {empty}: every one of its 2 documents is empty" in err


def test_wiki_summaries_reader(shared_data: Path) -> None:
    reader = WikiSummariesCorpus(shared_data / "wiki-vital" / "summaries_en-us.json", limit=5)
    docs = list(reader.iter_documents())
    assert len(docs) == 5 and all(text for _, _, text in docs)
    assert reader.scan().ids == [d[0] for d in docs]


def test_document_text_joins_title() -> None:
    assert document_text("Paris", "is a city") == "Paris is a city"
    assert document_text("", "only text") == "only text"


def test_limit_small_corpus_reads(shared_data: Path) -> None:
    scan = JsonlCorpus(shared_data / "limit-small" / "corpus.jsonl").scan()
    assert len(scan.ids) == 46 and len(set(scan.ids)) == 46


# ------------------------------------------------------------------------------ corpora in their published layouts


def chunk_line(page: str, n: int, title: str, text: str, **meta: object) -> str:
    """A line of QAMPARI's chunked Wikipedia, as its models/retrievers/BM25/chunk_wiki.py writes it."""
    m = {"revid": "9", "url": f"https://en.wikipedia.org/wiki?curid={page}", "title": title, "file_path": "AA/wiki_00",
         "page_id": page, "content": text, "chunk_id": f"{page}__{n}", **meta}
    return json.dumps({"id": f"{page}__{n}", "contents": f"{title} {text}", "meta": m})


def chunk_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "wikipedia_chunks"
    folder.mkdir(parents=True)
    for i in (0, 2, 10):  # natural order: 0, 2, 10 (a plain sort would put 10 before 2)
        write_lines(folder / f"wikipedia_chunks_{i}.jsonl",
                    [chunk_line(str(100 + i), n, f"Page {i}", f"chunk {n} of page {i}.") for n in range(2)])
    (folder / "README.txt").write_text("not a corpus file")
    return folder


def test_qampari_chunk_folder_reads_in_natural_order_with_title_and_text_from_meta(tmp_path: Path) -> None:
    reader = open_corpus(chunk_folder(tmp_path))
    docs = list(reader.iter_documents())
    assert [d[0] for d in docs] == ["100__0", "100__1", "102__0", "102__1", "110__0", "110__1"]
    assert docs[0] == ("100__0", "Page 0", "chunk 0 of page 0.")
    assert document_text(*docs[0][1:]) == "Page 0 chunk 0 of page 0."  # = the line's `contents`
    scan = reader.scan()
    assert list(scan.ids) == [d[0] for d in docs]
    assert reader.describe()["files"] == 3 and reader.describe()["format"] == "jsonl-files"
    assert open_corpus(chunk_folder(tmp_path / "again")).scan().fingerprint == scan.fingerprint  # content, not place


def test_qampari_chunks_as_a_glob_or_one_file(tmp_path: Path) -> None:
    folder = chunk_folder(tmp_path)
    some = open_corpus(f"{folder}/wikipedia_chunks_1*.jsonl")
    assert [d[0] for d in some.iter_documents()] == ["110__0", "110__1"]
    one = open_corpus(folder / "wikipedia_chunks_2.jsonl")
    assert isinstance(one, JsonlCorpus) and list(one.iter_documents())[1] == ("102__1", "Page 2", "chunk 1 of page 2.")


def test_contents_is_kept_whole_when_meta_does_not_make_it_up(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "c.jsonl", [
        json.dumps({"id": "a", "contents": "Just some text"}),  # Pyserini JsonCollection, no meta
        chunk_line("7", 0, "Title", "text", content="other text"),  # meta disagrees with contents
        json.dumps({"id": "b", "title": "T", "text": "beir line with id instead of _id"}),
    ])
    assert list(JsonlCorpus(path).iter_documents()) == [
        ("a", "", "Just some text"), ("7__0", "", "Title text"), ("b", "T", "beir line with id instead of _id")]


def test_chunk_folder_errors_name_the_file_and_line(tmp_path: Path) -> None:
    folder = chunk_folder(tmp_path)
    write_lines(folder / "wikipedia_chunks_3.jsonl", [chunk_line("300", 0, "P", "x"), json.dumps({"id": "300__1"})])
    with pytest.raises(BenchError, match=r"wikipedia_chunks_3.jsonl, line 2: missing field 'text' \(or 'contents'\)"):
        open_corpus(folder).scan()
    write_lines(folder / "wikipedia_chunks_3.jsonl", [chunk_line("100", 1, "P", "x")])
    with pytest.raises(BenchError, match=r"wikipedia_chunks_3.jsonl, line 1: field '_id': duplicate id '100__1' "
                                         r"\(first on .*wikipedia_chunks_0.jsonl, line 2\)"):
        open_corpus(folder).scan()
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(BenchError, match="holds \\*.jsonl files"):
        open_corpus(empty)
    with pytest.raises(BenchError, match="no file matches"):
        open_corpus(f"{folder}/nothing_*.jsonl")


def test_a_changed_chunk_file_is_scanned_again(tmp_path: Path) -> None:
    folder = chunk_folder(tmp_path)
    first = open_corpus(folder).scan()
    assert open_corpus(folder).scan().fingerprint_info["method"] == "cached"
    write_lines(folder / "wikipedia_chunks_10.jsonl", [chunk_line("110", 0, "Page 10", "changed")])
    again = open_corpus(folder).scan()
    assert again.fingerprint_info["method"] == "sha256" and again.fingerprint != first.fingerprint
    assert len(again.ids) == 5
