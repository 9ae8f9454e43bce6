"""Streaming readers for text corpora, queries and relevance judgements, built for corpora of any size.

Formats:
- JSONL corpus, one object per line (BEIR: `{"_id", "title", "text"}`; the field names are parameters), or Pyserini's
  JsonCollection `{"id", "contents"}` — QAMPARI's chunked Wikipedia, whose `meta` gives title and text; a folder of
  such files or a glob (QAMPARI's `wikipedia_chunks_{i}.jsonl`) is read as one corpus, file after file;
- DPR passages TSV (`psgs_w100.tsv`), `id<TAB>text<TAB>title`, with that header line (columns in any order) or
  without it (then in that order), fields quoted the way Python's csv module writes them (DPR's convention);
- BEIR queries JSONL (`{"_id", "text"}`) and qrels, as JSONL (`{"query-id", "corpus-id", "score"[, "cluster"]}`, the
  LIMIT release) or TSV with a `query-id<TAB>corpus-id<TAB>score[<TAB>cluster]` header (the BEIR release); the
  optional `cluster` column names the answer cluster a judged passage covers (README "Data formats");
- Wikipedia lead summaries as one JSON object `{title: {"title", "extract", ...}}` (../shared/data/wiki-vital): read as
  a passage corpus, one passage per article, id = the key, title = `title`, text = `extract`.

Ids are kept as strings ("007" stays "007"). Readers stream: `iter_documents()` yields `(id, title, text)` one record
at a time, so a 25M-passage corpus is never held in memory as text. `scan()` validates every record once, rejects
duplicate ids and fingerprints the file; its result is cached (`<cache>/corpus-scan/`) and reused while the file's
size and mtime are unchanged — a changed file is re-read and re-hashed, and `scan(force_hash=True)` always re-hashes.
The ids live in two numpy arrays (utf-8 bytes + offsets) and are found by row through a sorted table of 64-bit id
hashes (`CorpusIds`), memory-mapped from the cache: no Python object per id. Every malformed record raises one
BenchError naming the file, the line and the field.
"""

from __future__ import annotations

import csv
import glob
import hashlib
import json
import math
import os
import re
from array import array
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, overload

import numpy as np

from bench.errors import BenchError
from bench.storage.cache import cache_root, file_sha256, load_or_build, stable_hash, verify_entry, write_record


def document_text(title: str, text: str) -> str:
    """The string an encoder embeds for a document: `title text` (the BEIR / mteb convention), or the text alone."""
    title = title.strip()
    return f"{title} {text}" if title else text

# ------------------------------------------------------------------------------------------------------ id table


def id_hash(doc_id: str) -> int:
    """A stable 64-bit hash of an id (blake2b), the key of the sorted lookup table."""
    return int.from_bytes(hashlib.blake2b(doc_id.encode("utf-8"), digest_size=8).digest(), "little")


class CorpusIds(Sequence[str]):
    """The ids of a corpus in row order, as one utf-8 byte array + offsets, with id → row through sorted 64-bit
    hashes. Behaves like a read-only list of str (len, index, slice, iteration, ==)."""

    def __init__(self, blob: np.ndarray, offsets: np.ndarray, hashes: np.ndarray, hash_rows: np.ndarray) -> None:
        self.blob, self.offsets, self.hashes, self.hash_rows = blob, offsets, hashes, hash_rows

    @classmethod
    def from_list(cls, ids: Iterable[str]) -> CorpusIds:
        builder = _IdBuilder()
        for i in ids:
            builder.add(i, 0)
        return builder.finish(None)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @overload
    def __getitem__(self, i: int) -> str: ...

    @overload
    def __getitem__(self, i: slice) -> list[str]: ...

    def __getitem__(self, i: int | slice) -> str | list[str]:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        n = len(self)
        i = int(i)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(f"corpus row {i} out of range (0..{n - 1})")
        return bytes(self.blob[self.offsets[i]: self.offsets[i + 1]]).decode("utf-8")

    def __iter__(self) -> Iterator[str]:
        step = 65536
        for lo in range(0, len(self), step):
            hi = min(lo + step, len(self))
            base = int(self.offsets[lo])
            chunk = bytes(self.blob[base: int(self.offsets[hi])])
            offs = (np.asarray(self.offsets[lo: hi + 1]) - base).tolist()
            for a, b in zip(offs[:-1], offs[1:], strict=True):
                yield chunk[a:b].decode("utf-8")

    def __eq__(self, other: object) -> bool:
        if isinstance(other, CorpusIds | list | tuple):
            return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        head = ", ".join(repr(x) for x in self[:3])
        return f"CorpusIds([{head}{', ...' if len(self) > 3 else ''}], n={len(self)})"

    def row(self, doc_id: str) -> int:
        """The row of an id, or -1 when the corpus has no such id."""
        h = np.uint64(id_hash(doc_id))
        pos = int(np.searchsorted(self.hashes, h, side="left"))
        while pos < len(self.hashes) and self.hashes[pos] == h:
            r = int(self.hash_rows[pos])
            if self[r] == doc_id:
                return r
            pos += 1
        return -1

    def rows(self, ids: Iterable[str]) -> np.ndarray:
        """Rows of many ids (int64; -1 for an unknown id)."""
        return np.fromiter((self.row(i) for i in ids), dtype=np.int64)

    def __contains__(self, doc_id: object) -> bool:
        return isinstance(doc_id, str) and self.row(doc_id) >= 0

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        for name in ("blob", "offsets", "hashes", "hash_rows"):
            np.save(folder / f"{name}.npy", getattr(self, name))

    @classmethod
    def load(cls, folder: Path) -> CorpusIds:
        arrays = [np.load(folder / f"{n}.npy", mmap_mode="r") for n in ("blob", "offsets", "hashes", "hash_rows")]
        return cls(*arrays)


class _IdBuilder:
    """Collects ids with their line numbers in flat arrays during a scan; `finish` sorts and checks uniqueness."""

    def __init__(self) -> None:
        self.blob = bytearray()
        self.offsets = array("q", [0])
        self.hashes = array("Q")
        self.lines = array("q")

    def add(self, doc_id: str, line: int) -> None:
        raw = doc_id.encode("utf-8")
        self.blob += raw
        self.offsets.append(len(self.blob))
        self.hashes.append(int.from_bytes(hashlib.blake2b(raw, digest_size=8).digest(), "little"))
        self.lines.append(line)

    def finish(self, path: Path | None, field_name: str = "id", locate: Any = None) -> CorpusIds:
        hashes = np.frombuffer(self.hashes, dtype=np.uint64).copy() if len(self.hashes) else np.zeros(0, np.uint64)
        order = np.argsort(hashes, kind="stable").astype(np.int64)
        ids = CorpusIds(np.frombuffer(bytes(self.blob), dtype=np.uint8).copy(),
                        np.frombuffer(self.offsets, dtype=np.int64).copy(), hashes[order], order)
        same = np.flatnonzero(ids.hashes[1:] == ids.hashes[:-1])
        for pos in same.tolist():  # equal hashes: a duplicate id, or (rarely) a 64-bit collision
            a, b = sorted((int(order[pos]), int(order[pos + 1])))
            if ids[a] == ids[b]:
                if locate is not None:  # several files: `locate(line)` names the file and line
                    where, first = locate(self.lines[b]), locate(self.lines[a])
                else:
                    where = f"{path}, line {self.lines[b]}" if path is not None else f"row {b}"
                    first = f"line {self.lines[a]}" if path is not None else f"row {a}"
                raise BenchError(f"{where}: field {field_name!r}: duplicate id {ids[a]!r} (first on {first})")
        return ids


@dataclass
class CorpusScan:
    """What one validating pass over a corpus file gives: the ids in file order and a content fingerprint.

    `fingerprint_info` records how the fingerprint was obtained: `"sha256"` (the file was read and hashed now) or
    `"cached"` (served from an earlier scan of the same path, size and mtime)."""

    ids: CorpusIds
    fingerprint: str
    fingerprint_info: dict[str, Any] = field(default_factory=dict)

    def row_of(self) -> dict[str, int]:
        """A dict id → row (small corpora only: one Python object per id; use `ids.row` / `ids.rows` at scale)."""
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


class _CorpusReader:
    """Shared by the readers: stream validated records; scan (cached by path + size + mtime) and fingerprint."""

    path: Path
    kind = ""
    id_field = "id"

    def _records(self) -> Iterator[tuple[int, str, str, str]]:
        """(line number, id, title, text) per document, validated."""
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        raise NotImplementedError

    def _fingerprint_extra(self) -> Any:
        return None

    def iter_documents(self) -> Iterator[tuple[str, str, str]]:
        """(id, title, text) in file order, validated as they stream."""
        for _, doc_id, title, text in self._records():
            yield doc_id, title, text

    def _files(self) -> list[Path]:
        """The files the corpus is read from, in order."""
        return [self.path]

    def _stat(self) -> tuple[Any, Any]:
        """(size, mtime_ns) of the file, or the lists of them for a corpus of several files."""
        stats = []
        for f in self._files():
            try:
                stats.append(os.stat(f))
            except FileNotFoundError:
                raise BenchError(f"{f}: no such file") from None
        if len(stats) == 1 and self._files() == [self.path]:
            return stats[0].st_size, stats[0].st_mtime_ns
        return [st.st_size for st in stats], [st.st_mtime_ns for st in stats]

    def _content_sha(self) -> str:
        return file_sha256(self.path)

    def _locate(self, line: int) -> str:
        return _where(self.path, line)

    def scan(self, force_hash: bool = False, cache: bool = True) -> CorpusScan:
        """Validate every record, reject duplicate ids, fingerprint the file content. Served from the scan cache
        while the file's size and mtime are those of the cached scan, unless `force_hash`."""
        size, mtime = self._stat()
        stamp = {"path": str(self.path.resolve()), "size": size, "mtime_ns": mtime,
                 "reader": self.describe() | {"path": None}, "extra": self._fingerprint_extra()}
        key = stable_hash([stamp["path"], stamp["reader"], stamp["extra"]])
        record_path = cache_root() / "corpus-scan" / f"{key}.json"
        if cache and not force_hash and record_path.is_file():
            try:
                rec = json.loads(record_path.read_text())
                folder = cache_root() / "corpus-ids" / rec["fingerprint"]
                same = rec["size"] == size and rec["mtime_ns"] == mtime
                if same and verify_entry(folder) is None:
                    info = {"method": "cached", "size": size, "mtime_ns": mtime, "sha256": rec["sha256"],
                            "empty_documents": int(rec["empty_documents"])}
                    ids = CorpusIds.load(folder)
                    self._warn_if_empty(len(ids), info["empty_documents"])
                    return CorpusScan(ids, rec["fingerprint"], info)
            except (OSError, ValueError, KeyError, TypeError):
                pass  # an unreadable record or id table (or one from before empty documents were counted) is rebuilt
        builder = _IdBuilder()
        empty = 0
        for line_no, doc_id, title, text in self._records():
            builder.add(doc_id, line_no)
            empty += not (title.strip() or text.strip())
        if len(builder.offsets) == 1:
            raise BenchError(f"{self.path}: the corpus has no documents")
        several = self._files() != [self.path]
        ids = builder.finish(self.path, self.id_field, locate=self._locate if several else None)
        self._warn_if_empty(len(ids), empty)
        sha = self._content_sha()
        if self._stat() != (size, mtime):
            raise BenchError(f"{self.path}: the file changed while it was being read; run again")
        fp = stable_hash([self.kind, sha, self.describe().get("fields"), self._fingerprint_extra()], length=32)
        info = {"method": "sha256", "size": size, "mtime_ns": mtime, "sha256": sha, "empty_documents": empty}
        if cache:  # the id table is a verified cache entry (bench/storage/cache.py), the stat record a small JSON
            # entry rewritten in place when the corpus's size or mtime change, so judged by its content
            load_or_build(cache_root() / "corpus-ids" / fp, ids.save, lambda p: p, folder=True,
                          info={"corpus": str(self.path), "n_docs": len(ids)})
            write_record(record_path, {"size": size, "mtime_ns": mtime, "sha256": sha, "fingerprint": fp,
                                       "path": stamp["path"], "empty_documents": empty},
                         "size", "mtime_ns", "sha256", "fingerprint")
        return CorpusScan(ids, fp, info)

    def _warn_if_empty(self, n_docs: int, empty: int) -> None:
        """A corpus whose every document is empty is legal but degenerate: every encoder gives every document the same
        vector, every ranking is a tie broken by corpus order, and the figures measure that order."""
        if n_docs and empty == n_docs:
            from bench.progress import warn

            warn(f"{self.path}: every one of its {n_docs} documents is empty (no title, no text): every retriever "
                 "scores them all alike, so any figure on this corpus comes from how ties are broken, not from "
                 "retrieval")


_LineCorpus = _CorpusReader  # the former name


class JsonlCorpus(_CorpusReader):
    """A JSONL corpus: one document object per line with an id, an optional title and a text.

    With the default field names a line is either BEIR's `{"_id", "title", "text"}` or Pyserini's JsonCollection
    `{"id", "contents"}`, QAMPARI's chunked Wikipedia among them (`{"id": "<page_id>__<n>", "contents": "<title>
    <text>", "meta": {"title", "content", ...}}`): `id` stands in for a missing `_id`, and `contents` for a missing
    `text` (see `split_contents`)."""

    kind = "jsonl"

    def __init__(self, path: str | os.PathLike[str], id_field: str = "_id", text_field: str = "text",
                 title_field: str = "title") -> None:
        self.path = Path(path)
        self.id_field, self.text_field, self.title_field = id_field, text_field, title_field

    def _records(self) -> Iterator[tuple[int, str, str, str]]:
        for line_no, obj in _json_lines(self.path):
            yield line_no, *self._document(obj, _where(self.path, line_no))

    def _document(self, obj: dict[str, Any], where: str) -> tuple[str, str, str]:
        """(id, title, text) of one record."""
        id_field = self.id_field
        if id_field == "_id" and "_id" not in obj:
            if "id" not in obj:
                raise BenchError(f"{where}: missing field '_id' (or 'id')")
            id_field = "id"
        doc_id = _id_field(obj, id_field, where)
        if self.text_field == "text" and "text" not in obj:
            if "contents" not in obj:
                raise BenchError(f"{where}: missing field 'text' (or 'contents')")
            return doc_id, *split_contents(_text_field(obj, "contents", where), obj.get("meta"))
        text = _text_field(obj, self.text_field, where)
        return doc_id, _text_field(obj, self.title_field, where, required=False), text

    def describe(self) -> dict[str, Any]:
        fields = [self.id_field, self.title_field, self.text_field]
        return {"format": self.kind, "path": str(self.path), "fields": fields}


def split_contents(contents: str, meta: Any) -> tuple[str, str]:
    """(title, text) of a Pyserini `contents` string. QAMPARI writes `contents` = `meta.title + " " + meta.content`
    and reads title and text back from `meta` (its models/retrievers/BM25/to_dpr.py); when `meta` holds both and they
    make up `contents` exactly, they are the title and text, so the passage (`document_text`: `title text`) is
    `contents` itself, as its BM25 indexed it. Otherwise `contents` is kept whole as the text, without a title."""
    if isinstance(meta, dict):
        title, text = meta.get("title"), meta.get("content")
        if isinstance(title, str) and isinstance(text, str) and title.strip() and f"{title} {text}" == contents:
            return title, text
    return "", contents


_NUMBERS = re.compile(r"(\d+)")


def natural_key(path: Path) -> list[Any]:
    """Sort key that puts wikipedia_chunks_2.jsonl before wikipedia_chunks_10.jsonl."""
    return [(0, int(t), "") if t.isdigit() else (1, 0, t) for t in _NUMBERS.split(path.name)]


class JsonlFilesCorpus(JsonlCorpus):
    """A corpus of several JSONL files read one after the other (a folder of `*.jsonl` or a glob, in natural order:
    QAMPARI's `wikipedia_chunks_{i}.jsonl`). Errors name the file and its line; ids are unique across the files."""

    kind = "jsonl-files"

    def __init__(self, path: str | os.PathLike[str], files: Sequence[Path]) -> None:
        super().__init__(path)
        self.files = [Path(f) for f in files]

    def _files(self) -> list[Path]:
        return self.files

    def _records(self) -> Iterator[tuple[int, str, str, str]]:
        for i, f in enumerate(self.files):
            for line_no, obj in _json_lines(f):
                yield (i << 32) | line_no, *self._document(obj, _where(f, line_no))

    def _locate(self, line: int) -> str:
        return _where(self.files[line >> 32], line & 0xFFFFFFFF)

    def _content_sha(self) -> str:
        return stable_hash([(f.name, file_sha256(f)) for f in self.files], length=64)

    def describe(self) -> dict[str, Any]:
        return super().describe() | {"files": len(self.files), "first": self.files[0].name,
                                     "last": self.files[-1].name}


def corpus_files(path: str | os.PathLike[str]) -> tuple[Path, list[Path] | None]:
    """The corpus path and, for a folder of `*.jsonl` files or a glob, its files in natural order (None for one
    file)."""
    text = os.path.expanduser(str(path))
    p = Path(text)
    if p.is_dir():
        files = sorted(p.glob("*.jsonl"), key=natural_key)
        if not files:
            raise BenchError(f"{p}: a corpus folder holds *.jsonl files (QAMPARI: wikipedia_chunks_{{i}}.jsonl), and "
                             f"this one has none")
        return p, files
    if any(c in p.name for c in "*?["):
        files = sorted((Path(f) for f in glob.glob(text) if Path(f).is_file()), key=natural_key)
        if not files:
            raise BenchError(f"{text}: no file matches this pattern")
        bad = [f.name for f in files if f.suffix != ".jsonl"]
        if bad:
            raise BenchError(f"{text}: a corpus pattern must match JSONL files only; it matches {bad[0]}")
        return p, files
    return p, None


class TsvCorpus(_CorpusReader):
    """DPR / QAMPARI passages: `id<TAB>text<TAB>title` per line; a header naming the columns (`id`, `text`,
    `title`, any order) is optional."""

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
            csv.field_size_limit(1 << 30)
            reader = csv.reader(fh, delimiter="\t")
            start = 1
            cols = {"id": 0, "text": 1, "title": 2}
            try:
                for row in reader:
                    line_no, start = start, reader.line_num + 1  # a quoted field may span several lines
                    if not row or (len(row) == 1 and not row[0].strip()):
                        continue
                    if line_no == 1:
                        names = [c.strip().lower() for c in row]
                        if "id" in names and ("text" in names or "title" in names):
                            missing = [c for c in self.HEADER if c not in names]
                            if missing:
                                raise BenchError(f"{_where(self.path, 1)}: the header has no column "
                                                 f"{', '.join(repr(m) for m in missing)} (expected id, text, title)")
                            cols = {c: names.index(c) for c in self.HEADER}
                            continue
                    where = _where(self.path, line_no)
                    if len(row) != 3:
                        missing = [c for c in self.HEADER if cols[c] >= len(row)]
                        what = f": column {', '.join(repr(m) for m in missing)} is missing" if missing else ""
                        raise BenchError(
                            f"{where}: expected 3 tab-separated fields (id, text, title), got {len(row)}{what}"
                        )
                    doc_id, text, title = row[cols["id"]], row[cols["text"]], row[cols["title"]]
                    if not doc_id.strip():
                        raise BenchError(f"{where}: field 'id' is empty")
                    yield line_no, doc_id.strip(), title, text
            except UnicodeDecodeError as exc:
                raise BenchError(f"{_where(self.path, start)}: not valid UTF-8 ({exc.reason})") from None
            except csv.Error as exc:
                raise BenchError(f"{_where(self.path, start)}: malformed TSV ({exc})") from None

    def describe(self) -> dict[str, Any]:
        return {"format": self.kind, "path": str(self.path), "fields": list(self.HEADER)}


class WikiSummariesCorpus(_CorpusReader):
    """Wikipedia lead summaries, one JSON object `{key: {"title", "extract", ...}}` (6.5 MB for ../shared/data/
    wiki-vital), read as a passage corpus: id = the key, title = `title`, text = `extract` (so a passage is
    `title extract`, beginning with its title like the paper's passages). The file is small enough to parse whole."""

    kind = "wiki-summaries"
    id_field = "key"

    def __init__(self, path: str | os.PathLike[str], limit: int | None = None) -> None:
        self.path = Path(path)
        self.limit = limit

    def _records(self) -> Iterator[tuple[int, str, str, str]]:
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
            yield n + 1, key, _text_field(rec, "title", where, required=False), _text_field(rec, "extract", where)

    def _fingerprint_extra(self) -> Any:
        return self.limit

    def describe(self) -> dict[str, Any]:
        return {"format": self.kind, "path": str(self.path), "limit": self.limit}


CorpusReader = JsonlCorpus | JsonlFilesCorpus | TsvCorpus | WikiSummariesCorpus


def open_corpus(path: str | os.PathLike[str]) -> CorpusReader:
    """A reader chosen by the path: a folder of `*.jsonl` files or a glob → several JSONL files; else by the file
    extension: .jsonl → JSONL, .tsv → DPR TSV, .json → Wikipedia summaries."""
    p, files = corpus_files(path)
    if files is not None:
        return JsonlFilesCorpus(p, files)
    if p.suffix == ".jsonl":
        return JsonlCorpus(p)
    if p.suffix == ".tsv":
        return TsvCorpus(p)
    if p.suffix == ".json":
        return WikiSummariesCorpus(p)
    raise BenchError(f"{p}: unknown corpus format (expected a .jsonl, .tsv or wiki-summaries .json file)")


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
    """One judgement. `cluster` names the answer cluster the document covers (None: the document is its own)."""

    query_id: str
    doc_id: str
    score: float
    line: int
    cluster: str | None = None


QRELS_COLUMNS = ("query-id", "corpus-id", "score", "cluster")


def read_qrels(path: str | os.PathLike[str]) -> list[Qrel]:
    """Relevance judgements as JSONL (`query-id`, `corpus-id`, `score`, optional `cluster`) or BEIR TSV (a
    `query-id corpus-id score [cluster]` header optional). Scores must be finite numbers."""
    p = Path(path)
    if p.suffix == ".jsonl":
        out = []
        for line_no, obj in _json_lines(p):
            where = _where(p, line_no)
            cluster = _id_field(obj, "cluster", where) if obj.get("cluster") is not None else None
            out.append(Qrel(_id_field(obj, "query-id", where), _id_field(obj, "corpus-id", where),
                            _score(obj.get("score", 1), where), line_no, cluster))
        return out
    return _read_qrels_tsv(p)


def _score(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise BenchError(f"{where}: field 'score' must be a number, got {value!r}")
    try:
        score = float(value)
    except ValueError:
        raise BenchError(f"{where}: field 'score' must be a number, got {value!r}") from None
    if not math.isfinite(score):
        raise BenchError(f"{where}: field 'score' must be a finite number, got {value!r}")
    return score


def _is_qrels_header(line: str) -> bool:
    """Whether a first line names the qrels columns (in any order, with any separator) rather than holding a
    judgement: it mentions query-id / corpus-id (or qid), so the reader can say what is wrong with it."""
    tokens = {t.strip().lower().replace("_", "-") for t in re.split(r"[\t,; ]+", line)}
    return bool(tokens & {"query-id", "qid", "corpus-id"})


def _read_qrels_tsv(p: Path) -> list[Qrel]:
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise BenchError(f"{p}: no such file") from None
    except UnicodeDecodeError as exc:
        raise BenchError(f"{p}: not valid UTF-8 ({exc.reason})") from None
    out = []
    width: int | None = None
    for line_no, line in enumerate(lines, 1):
        if not line.strip():
            continue
        cols = line.split("\t")
        if line_no == 1 and _is_qrels_header(line):
            width = len(cols)
            if len(cols) == 1 and any(sep in line for sep in ",; "):
                raise BenchError(f"{_where(p, 1)}: not tab-separated: the header {line.strip()!r} separates its "
                                 "columns with commas or spaces; a qrels .tsv file separates them with tabs "
                                 "(query-id<TAB>corpus-id<TAB>score[<TAB>cluster])")
            header = [c.strip().lower().replace("_", "-") for c in cols]
            if width not in (3, 4) or header[:2] not in (["query-id", "corpus-id"], ["qid", "corpus-id"]) \
                    or (width == 4 and header[3] != "cluster"):
                raise BenchError(f"{_where(p, 1)}: the header must be query-id, corpus-id, score[, cluster] in that "
                                 f"order, got {', '.join(c.strip() for c in cols)}")
            continue
        where = _where(p, line_no)
        if width is None:
            width = len(cols) if len(cols) in (3, 4) else 3
        if len(cols) != width:
            names = ", ".join(QRELS_COLUMNS[:width])
            hint = "; the line has no tab: the file is not tab-separated" if len(cols) == 1 and "," in line else ""
            raise BenchError(f"{where}: expected {width} tab-separated fields ({names}), got {len(cols)}{hint}")
        qid, did, score = (c.strip() for c in cols[:3])
        cluster = cols[3].strip() if width == 4 else None
        for name, value in (("query-id", qid), ("corpus-id", did), ("cluster", cluster)):
            if value is not None and not value:
                raise BenchError(f"{where}: field {name!r} is empty")
        out.append(Qrel(qid, did, _score(score, where), line_no, cluster))
    return out
