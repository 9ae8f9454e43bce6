"""Streaming readers for text corpora, queries and relevance judgements.

Formats:
- JSONL corpus, one object per line (BEIR: `{"_id", "title", "text"}`; the field names are parameters);
- DPR / QAMPARI passages TSV, `id<TAB>text<TAB>title`, optionally with that header line, fields quoted the way
  Python's csv module writes them (the DPR `psgs_w100.tsv` convention);
- BEIR queries JSONL (`{"_id", "text"}`) and qrels, as JSONL (`{"query-id", "corpus-id", "score"}`, the LIMIT release)
  or TSV with a `query-id<TAB>corpus-id<TAB>score` header (the BEIR release);
- Wikipedia lead summaries as one JSON object `{title: {"title", "extract", ...}}` (../shared/data/wiki-vital).

Readers stream: `iter_documents()` yields `(id, title, text)` one line at a time, so a 25M-passage corpus is never
held in memory as text. `scan()` reads the file once to validate every record, collect the ids (the harness needs
the id of every corpus row) and hash the file (the corpus fingerprint keys the embedding cache). Every malformed
record raises one BenchError naming the file, the line and the field.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.cache import file_sha256, stable_hash
from bench.encode import document_text  # noqa: F401  (re-exported: how a (title, text) record becomes one string)
from bench.errors import BenchError


@dataclass
class CorpusScan:
    """What one validating pass over a corpus file gives: the ids in file order and a content fingerprint."""

    ids: list[str]
    fingerprint: str

    def row_of(self) -> dict[str, int]:
        return {doc_id: row for row, doc_id in enumerate(self.ids)}


def _where(path: Path, line: int) -> str:
    return f"{path}, line {line}"


def _json_lines(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for every non-blank line; bad UTF-8, bad JSON or a non-object is a BenchError."""
    try:
        fh = open(path, "rb")
    except FileNotFoundError:
        raise BenchError(f"{path}: no such file") from None
    except OSError as exc:
        raise BenchError(f"{path}: cannot be read ({exc.strerror})") from None
    with fh:
        for line_no, raw in enumerate(fh, 1):
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw)
            except UnicodeDecodeError as exc:
                raise BenchError(f"{_where(path, line_no)}: not valid UTF-8 ({exc.reason})") from None
            except json.JSONDecodeError as exc:
                raise BenchError(f"{_where(path, line_no)}: not valid JSON ({exc.msg}, column {exc.colno})") from None
            if not isinstance(obj, dict):
                raise BenchError(f"{_where(path, line_no)}: expected a JSON object, got {type(obj).__name__}")
            yield line_no, obj


def _id_field(obj: dict[str, Any], field: str, where: str) -> str:
    if field not in obj:
        raise BenchError(f"{where}: missing field {field!r}")
    value = obj[field]
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise BenchError(f"{where}: field {field!r} must be a string, got {type(value).__name__}")
    value = str(value)
    if not value.strip():
        raise BenchError(f"{where}: field {field!r} is empty")
    return value


def _text_field(obj: dict[str, Any], field: str, where: str, required: bool = True) -> str:
    if field not in obj or obj[field] is None:
        if required:
            raise BenchError(f"{where}: missing field {field!r}")
        return ""
    value = obj[field]
    if not isinstance(value, str):
        raise BenchError(f"{where}: field {field!r} must be a string, got {type(value).__name__}")
    return value


def _check_unique(seen: dict[str, int], doc_id: str, field: str, path: Path, line: int) -> None:
    first = seen.get(doc_id)
    if first is not None:
        raise BenchError(f"{_where(path, line)}: field {field!r}: duplicate id {doc_id!r} (first on line {first})")
    seen[doc_id] = line


class _LineCorpus:
    """Shared by the line-based readers: stream validated records, scan for duplicate ids and fingerprint."""

    path: Path
    id_field = "id"

    def _records(self) -> Iterator[tuple[int, str, str, str]]:
        """(line number, id, title, text) per document, validated."""
        raise NotImplementedError

    def iter_documents(self) -> Iterator[tuple[str, str, str]]:
        """(id, title, text) in file order, validated as they stream."""
        for _, doc_id, title, text in self._records():
            yield doc_id, title, text

    def scan(self) -> CorpusScan:
        """Validate every line, reject duplicate ids, and fingerprint the file content."""
        seen: dict[str, int] = {}
        for line_no, doc_id, _, _ in self._records():
            _check_unique(seen, doc_id, self.id_field, self.path, line_no)
        if not seen:
            raise BenchError(f"{self.path}: the corpus has no documents")
        return CorpusScan(list(seen), _fingerprint(self))


class JsonlCorpus(_LineCorpus):
    """A JSONL corpus: one document object per line with an id, an optional title and a text."""

    kind = "jsonl"

    def __init__(self, path: str | os.PathLike[str], id_field: str = "_id", text_field: str = "text",
                 title_field: str = "title") -> None:
        self.path = Path(path)
        self.id_field, self.text_field, self.title_field = id_field, text_field, title_field

    def _records(self) -> Iterator[tuple[int, str, str, str]]:
        for line_no, obj in _json_lines(self.path):
            where = _where(self.path, line_no)
            doc_id = _id_field(obj, self.id_field, where)
            text = _text_field(obj, self.text_field, where)
            title = _text_field(obj, self.title_field, where, required=False)
            yield line_no, doc_id, title, text

    def describe(self) -> dict[str, Any]:
        fields = [self.id_field, self.title_field, self.text_field]
        return {"format": self.kind, "path": str(self.path), "fields": fields}


class TsvCorpus(_LineCorpus):
    """DPR / QAMPARI passages: `id<TAB>text<TAB>title` per line, an optional `id text title` header."""

    kind = "tsv"
    HEADER = ("id", "text", "title")

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def _records(self) -> Iterator[tuple[int, str, str, str]]:
        try:
            fh = open(self.path, encoding="utf-8", newline="")
        except FileNotFoundError:
            raise BenchError(f"{self.path}: no such file") from None
        with fh:
            reader = csv.reader(fh, delimiter="\t")
            start = 1
            try:
                for row in reader:
                    line_no, start = start, reader.line_num + 1  # a quoted field may span several lines
                    if not row or (len(row) == 1 and not row[0].strip()):
                        continue
                    if line_no == 1 and tuple(c.strip().lower() for c in row) == self.HEADER:
                        continue
                    where = _where(self.path, line_no)
                    if len(row) != 3:
                        raise BenchError(
                            f"{where}: expected 3 tab-separated fields (id, text, title), got {len(row)}"
                        )
                    doc_id, text, title = row
                    if not doc_id.strip():
                        raise BenchError(f"{where}: field 'id' is empty")
                    yield line_no, doc_id.strip(), title, text
            except UnicodeDecodeError as exc:
                raise BenchError(f"{_where(self.path, start)}: not valid UTF-8 ({exc.reason})") from None
            except csv.Error as exc:
                raise BenchError(f"{_where(self.path, start)}: malformed TSV ({exc})") from None

    def describe(self) -> dict[str, Any]:
        return {"format": self.kind, "path": str(self.path), "fields": list(self.HEADER)}


class WikiSummariesCorpus:
    """Wikipedia lead summaries, one JSON object `{key: {"title", "extract", ...}}` (6.5 MB for ../shared/data/
    wiki-vital): the id is the key, the text its `extract`. The file is small enough to parse whole."""

    kind = "wiki-summaries"

    def __init__(self, path: str | os.PathLike[str], limit: int | None = None) -> None:
        self.path = Path(path)
        self.limit = limit

    def _items(self) -> Iterator[tuple[str, str, str]]:
        try:
            data = json.loads(self.path.read_bytes())
        except FileNotFoundError:
            raise BenchError(f"{self.path}: no such file") from None
        except json.JSONDecodeError as exc:
            raise BenchError(f"{_where(self.path, exc.lineno)}: not valid JSON ({exc.msg})") from None
        if not isinstance(data, dict):
            raise BenchError(f"{self.path}: expected one JSON object of articles")
        for n, (key, rec) in enumerate(data.items()):
            if self.limit is not None and n >= self.limit:
                return
            where = f"{self.path}, article {key!r}"
            if not isinstance(rec, dict):
                raise BenchError(f"{where}: expected an object")
            yield key, _text_field(rec, "title", where, required=False), _text_field(rec, "extract", where)

    def iter_documents(self) -> Iterator[tuple[str, str, str]]:
        yield from self._items()

    def scan(self) -> CorpusScan:
        ids = [key for key, _, _ in self._items()]
        if not ids:
            raise BenchError(f"{self.path}: the corpus has no documents")
        return CorpusScan(ids, _fingerprint(self, extra=self.limit))

    def describe(self) -> dict[str, Any]:
        return {"format": self.kind, "path": str(self.path), "limit": self.limit}


def _fingerprint(reader: Any, extra: Any = None) -> str:
    """Content hash of the file plus how it is read (format, fields): the corpus part of every cache key."""
    return stable_hash([reader.kind, file_sha256(reader.path), reader.describe().get("fields"), extra], length=32)


def open_corpus(path: str | os.PathLike[str]) -> JsonlCorpus | TsvCorpus:
    """A reader chosen by the file extension: .jsonl → JSONL, .tsv → DPR TSV."""
    p = Path(path)
    if p.suffix == ".jsonl":
        return JsonlCorpus(p)
    if p.suffix == ".tsv":
        return TsvCorpus(p)
    raise BenchError(f"{p}: unknown corpus format (expected a .jsonl or .tsv file)")


@dataclass
class Queries:
    ids: list[str]
    texts: list[str]


def read_queries(path: str | os.PathLike[str], id_field: str = "_id", text_field: str = "text") -> Queries:
    """BEIR queries JSONL; ids must be unique and texts present."""
    p = Path(path)
    seen: dict[str, int] = {}
    texts: list[str] = []
    for line_no, obj in _json_lines(p):
        where = _where(p, line_no)
        qid = _id_field(obj, id_field, where)
        texts.append(_text_field(obj, text_field, where))
        _check_unique(seen, qid, id_field, p, line_no)
    if not seen:
        raise BenchError(f"{p}: no queries")
    return Queries(list(seen), texts)


@dataclass
class Qrel:
    query_id: str
    doc_id: str
    score: float
    line: int


def read_qrels(path: str | os.PathLike[str]) -> list[Qrel]:
    """Relevance judgements as JSONL (`query-id`, `corpus-id`, `score`) or BEIR TSV with a header line."""
    p = Path(path)
    if p.suffix == ".jsonl":
        out = []
        for line_no, obj in _json_lines(p):
            where = _where(p, line_no)
            out.append(Qrel(_id_field(obj, "query-id", where), _id_field(obj, "corpus-id", where),
                            _score(obj.get("score", 1), where), line_no))
        return out
    return _read_qrels_tsv(p)


def _score(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise BenchError(f"{where}: field 'score' must be a number, got {value!r}")
    try:
        return float(value)
    except ValueError:
        raise BenchError(f"{where}: field 'score' must be a number, got {value!r}") from None


def _read_qrels_tsv(p: Path) -> list[Qrel]:
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise BenchError(f"{p}: no such file") from None
    except UnicodeDecodeError as exc:
        raise BenchError(f"{p}: not valid UTF-8 ({exc.reason})") from None
    out = []
    for line_no, line in enumerate(lines, 1):
        if not line.strip():
            continue
        cols = line.split("\t")
        if line_no == 1 and cols[0].strip().lower() in ("query-id", "query_id", "qid"):
            continue
        where = _where(p, line_no)
        if len(cols) != 3:
            raise BenchError(f"{where}: expected 3 tab-separated fields (query-id, corpus-id, score), got {len(cols)}")
        qid, did, score = (c.strip() for c in cols)
        for name, value in (("query-id", qid), ("corpus-id", did)):
            if not value:
                raise BenchError(f"{where}: field {name!r} is empty")
        out.append(Qrel(qid, did, _score(score, where), line_no))
    return out
