"""BM25 over a bench corpus, on `bm25s` (Lù 2024): the one lexical index of the harness.

Used by the gold-document mapping of the real tasks (tasks/ambigqa.py, tasks/qampari.py), by the `bm25` retriever
and by RM3 pseudo-relevance feedback. A document is `title text` (bench.data.corpus.document_text), rows follow the
corpus
stream order.

Scoring is bm25s's, with `method="lucene"` by default (Kamphuis et al. 2020):

    score(q, d) = Σ_{t ∈ q} idf(t) · tf(t, d) / (tf(t, d) + k1 · (1 − b + b · |d| / avgdl))
    idf(t)      = ln(1 + (N − df(t) + 0.5) / (df(t) + 0.5))

with |d| the number of tokens after stopword removal. Defaults k1 = 0.9, b = 0.4 are Anserini's / Pyserini's, the
BM25 the DPR line of work (and so AmbigQA and QAMPARI) used. Tokenisation: lower-case, the regex `splitter`, stopword
list `stopwords` ("en" = bm25s's English list, "none" = keep all), Snowball stemmer `stemmer` via PyStemmer ("none" =
no stemming). Every parameter is recorded (`BM25Index.describe()`).

The index is cached under `<cache>/bm25/<key>/`, key = corpus fingerprint + parameters + bm25s version, a verified cache
entry (bench/storage/cache.py: written atomically with a manifest, under a file lock); a rerun loads it (memory-mapped)
instead of re-tokenising the corpus.

**Building in bounded memory** (`build_on_disk`, what the cache uses). bm25s's own `BM25.index` holds every document's
token ids as Python lists, about 2.4 GB per million passages of ~100 words: 60 GB at Wikipedia's 25M. Here the corpus
is tokenised (bm25s's tokenizer, so the vocabulary and its ids are bm25s's) in chunks of `chunk_tokens` tokens; each
chunk's postings (term, document, term frequency), sorted by term, go to disk with the document lengths, and only the
document frequencies stay in memory. A second pass merges the chunks a block of terms at a time (`block_postings`
postings per block), computes every posting's BM25 weight exactly as bm25s does (its own idf and tf functions, the same
float64 arithmetic, stored as float32) and appends them to bm25s's column-major sparse arrays in bm25s's file layout,
which `bm25s.BM25.load(mmap=True)` then memory-maps for search. Memory: the vocabulary (the tokenizer's dictionaries,
which grow with the number of distinct words, not of passages), 4 bytes per passage for the document lengths, and one
chunk or one block at a time; the files written, never more. The arrays equal those of `BM25Index.build` (bm25s in
memory, kept for small indexes built from texts in memory), so scores and rankings are the same
(tests/index/test_bm25.py on LIMIT-small and wiki-vital).

`search(texts, k)` → (scores float32 (n, k), rows int64 (n, k)) in descending score, ties broken by the lower
corpus row; a document sharing no term with the query is not a candidate, so a row may end in -1 / -inf padding.
Term statistics for query expansion: `vocabulary`, `document_frequencies`, `doc_lengths`, `doc_terms(row)` (term ids,
term frequencies, BM25 term weights of one document) and `search_weighted` (a query as weighted term ids).
"""

from __future__ import annotations

import json
from array import array
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.data.corpus import document_text
from bench.errors import BenchError
from bench.storage.cache import Recipe, cache_root, load_or_build, stable_hash

DEFAULT_SPLITTER = r"(?u)\b\w\w+\b"


@dataclass(frozen=True)
class BM25Params:
    """How documents and queries are tokenised and scored; all recorded with every index and result."""

    k1: float = 0.9
    b: float = 0.4
    method: str = "lucene"  # bm25s: robertson | lucene | atire | bm25l | bm25+
    stopwords: str = "en"  # a bm25s stopword list name, or "none"
    stemmer: str = "english"  # a Snowball language for PyStemmer, or "none"
    lower: bool = True
    splitter: str = DEFAULT_SPLITTER

    def validate(self) -> None:
        if self.k1 < 0 or not np.isfinite(self.k1):
            raise BenchError(f"bm25: k1 must be a finite number >= 0, got {self.k1}")
        if not 0 <= self.b <= 1:
            raise BenchError(f"bm25: b must be in [0, 1], got {self.b}")
        if self.method not in ("robertson", "lucene", "atire", "bm25l", "bm25+"):
            raise BenchError(f"bm25: unknown method {self.method!r} (robertson, lucene, atire, bm25l, bm25+)")


def _bm25s_version() -> str:
    import bm25s

    return str(getattr(bm25s, "__version__", "unknown"))


def make_tokenizer(params: BM25Params) -> Any:
    """A bm25s Tokenizer configured from the parameters (PyStemmer for stemming)."""
    from bm25s.tokenization import Tokenizer

    stemmer = None
    if params.stemmer not in ("", "none"):
        import Stemmer

        try:
            stemmer = Stemmer.Stemmer(params.stemmer)
        except KeyError:
            raise BenchError(f"bm25: unknown stemmer language {params.stemmer!r}") from None
    stopwords: Any = None if params.stopwords in ("", "none") else params.stopwords
    try:
        return Tokenizer(lower=params.lower, splitter=params.splitter, stopwords=stopwords, stemmer=stemmer)
    except ValueError as exc:
        raise BenchError(f"bm25: {exc}") from None


class BM25Index:
    """A bm25s index over the rows of one corpus, with its tokenizer and per-document lengths."""

    def __init__(self, model: Any, tokenizer: Any, params: BM25Params, doc_lengths: np.ndarray,
                 corpus_fingerprint: str, path: Path | None = None) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.params = params
        self.doc_lengths = doc_lengths
        self.corpus_fingerprint = corpus_fingerprint
        self.path = path
        self._csc: Any = None
        self._csr: Any = None
        self._id_to_term: list[str] | None = None

    # ------------------------------------------------------------------------------------------------ building

    @classmethod
    def build(cls, texts: Iterable[str], params: BM25Params | None = None, corpus_fingerprint: str = "",
              n_docs: int | None = None, progress: Any = None) -> BM25Index:
        """Tokenise a stream of document strings (one per corpus row) and index them with bm25s."""
        import bm25s

        params = params or BM25Params()
        params.validate()
        tokenizer = make_tokenizer(params)
        token_ids: list[list[int]] = []
        for ids in tokenizer.streaming_tokenize(texts, update_vocab=True):
            token_ids.append(ids)
            if progress is not None:
                progress(1)
        if not token_ids:
            raise BenchError("bm25: the corpus has no documents")
        if n_docs is not None and len(token_ids) != n_docs:
            raise BenchError(f"bm25: the corpus stream gave {len(token_ids)} documents, expected {n_docs}")
        vocab = tokenizer.get_vocab_dict()
        model = bm25s.BM25(k1=params.k1, b=params.b, method=params.method)
        model.index((token_ids, vocab), show_progress=False)
        lengths = np.fromiter((len(t) for t in token_ids), dtype=np.int32, count=len(token_ids))
        return cls(model, tokenizer, params, lengths, corpus_fingerprint)

    @classmethod
    def from_texts(cls, texts: Sequence[str], params: BM25Params | None = None) -> BM25Index:
        """An uncached index over in-memory texts (tests, small feedback sets)."""
        return cls.build(iter(texts), params, corpus_fingerprint="", n_docs=len(texts))

    # --------------------------------------------------------------------------------------------- persistence

    def save(self, folder: Path) -> None:
        """Write the index into `folder` (non-atomic; `load_or_build_bm25` renames a finished folder into place)."""
        folder.mkdir(parents=True, exist_ok=True)
        self.model.save(str(folder), show_progress=False)
        self.tokenizer.save_vocab(str(folder))
        self.tokenizer.save_stopwords(str(folder))
        np.save(folder / "doc_lengths.npy", self.doc_lengths)
        meta = {"params": asdict(self.params), "corpus_fingerprint": self.corpus_fingerprint,
                "bm25s": _bm25s_version(), "n_docs": int(len(self.doc_lengths))}
        (folder / "bench_meta.json").write_text(json.dumps(meta, indent=1))

    @classmethod
    def load(cls, folder: Path, mmap: bool = True) -> BM25Index:
        import bm25s

        meta = json.loads((folder / "bench_meta.json").read_text())
        params = BM25Params(**meta["params"])
        model = bm25s.BM25.load(str(folder), mmap=mmap, show_progress=False)
        tokenizer = make_tokenizer(params)
        tokenizer.load_vocab(str(folder))
        tokenizer.load_stopwords(str(folder))
        lengths = np.load(folder / "doc_lengths.npy", mmap_mode="r" if mmap else None)
        return cls(model, tokenizer, params, lengths, meta["corpus_fingerprint"], path=folder)

    def describe(self) -> dict[str, Any]:
        """What a result records about this index."""
        return {"library": "bm25s", "bm25s": _bm25s_version(), **asdict(self.params),
                "corpus_fingerprint": self.corpus_fingerprint, "n_docs": self.n_docs, "n_terms": len(self.vocabulary)}

    # ------------------------------------------------------------------------------------------------- search

    @property
    def n_docs(self) -> int:
        return int(self.model.scores["num_docs"])

    def query_term_ids(self, text: str) -> list[int]:
        """The vocabulary ids of a query's tokens (unknown words dropped, repeats kept)."""
        ids = next(iter(self.tokenizer.streaming_tokenize([text], update_vocab=False, allow_empty=False)))
        return [int(i) for i in ids]

    def scores(self, text: str) -> np.ndarray:
        """BM25 score of every corpus row for one query (float32, length n_docs)."""
        ids = self.query_term_ids(text)
        if not ids:
            return np.zeros(self.n_docs, dtype=np.float32)
        return np.asarray(self.model.get_scores_from_ids(ids), dtype=np.float32)

    def search(self, texts: Sequence[str], k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k rows per query: (scores float32 (n, k), rows int64 (n, k)), -inf / -1 where fewer than k match."""
        if k <= 0:
            raise BenchError(f"bm25: k must be > 0, got {k}")
        out_s = np.full((len(texts), k), -np.inf, dtype=np.float32)
        out_r = np.full((len(texts), k), -1, dtype=np.int64)
        for i, text in enumerate(texts):
            s, r = top_k(self.scores(text), k)
            out_s[i, : len(r)], out_r[i, : len(r)] = s, r
        return out_s, out_r

    def search_weighted(self, queries: Sequence[dict[int, float]], k: int) -> tuple[np.ndarray, np.ndarray]:
        """Like `search`, for queries given as {term id: weight}: score = Σ_t weight_t · bm25(t, d) (RM3)."""
        if k <= 0:
            raise BenchError(f"bm25: k must be > 0, got {k}")
        csc = self._matrix_csc()
        out_s = np.full((len(queries), k), -np.inf, dtype=np.float32)
        out_r = np.full((len(queries), k), -1, dtype=np.int64)
        for i, q in enumerate(queries):
            if not q:
                continue
            terms = np.fromiter(q.keys(), dtype=np.int64)
            weights = np.fromiter(q.values(), dtype=np.float64)
            if terms.min() < 0 or terms.max() >= csc.shape[1]:
                raise BenchError(f"bm25: query {i} has a term id outside the vocabulary (0..{csc.shape[1] - 1})")
            s = np.asarray(csc[:, terms] @ weights, dtype=np.float32).ravel()
            # a document is a candidate when it contains a query term (not when its weighted sum happens to be > 0)
            hit = np.zeros(self.n_docs, dtype=bool)
            hit[csc[:, terms].tocoo().row] = True
            s, r = top_k(np.where(hit, s, -np.inf).astype(np.float32), k, candidates=hit)
            out_s[i, : len(r)], out_r[i, : len(r)] = s, r
        return out_s, out_r

    # ------------------------------------------------------------------------------------------ term statistics

    @property
    def vocabulary(self) -> dict[str, int]:
        """Term (stem, when stemming) → term id."""
        return dict(self.model.vocab_dict)

    def term(self, term_id: int) -> str:
        if self._id_to_term is None:
            inv = [""] * (max(self.model.vocab_dict.values()) + 1)
            for t, i in self.model.vocab_dict.items():
                inv[i] = t
            self._id_to_term = inv
        return self._id_to_term[term_id]

    @property
    def document_frequencies(self) -> np.ndarray:
        """df per term id: the number of documents containing the term (int64, length = vocabulary size)."""
        return np.diff(np.asarray(self.model.scores["indptr"])).astype(np.int64)

    @property
    def avg_doc_length(self) -> float:
        return float(np.mean(self.doc_lengths))

    def idf(self) -> np.ndarray:
        """idf per term id, by the index's idf method (Lucene: ln(1 + (N − df + 0.5) / (df + 0.5)))."""
        from bm25s.scoring import _select_idf_scorer

        fn = _select_idf_scorer(self.model.idf_method)
        n = self.n_docs
        return np.asarray([fn(int(df), n) for df in self.document_frequencies], dtype=np.float64)

    def doc_terms(self, row: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(term ids, term frequencies, BM25 weights) of one document. Term frequencies are recovered exactly from
        the stored weights for the robertson / lucene methods (w = idf·tf/(tf + k1·norm) ⇒ tf = k1·norm·x/(1 − x),
        x = w/idf); for other methods they are NaN."""
        if not 0 <= row < self.n_docs:
            raise BenchError(f"bm25: row {row} is outside the corpus (0..{self.n_docs - 1})")
        csr = self._matrix_csr()
        lo, hi = csr.indptr[row], csr.indptr[row + 1]
        terms = np.asarray(csr.indices[lo:hi], dtype=np.int64)
        weights = np.asarray(csr.data[lo:hi], dtype=np.float64)
        if self.params.method in ("robertson", "lucene"):
            from bm25s.scoring import _select_idf_scorer

            fn = _select_idf_scorer(self.model.idf_method)
            dfs = self.document_frequencies[terms]
            idf = np.asarray([fn(int(df), self.n_docs) for df in dfs], dtype=np.float64)
            x = weights / idf
            norm = 1 - self.params.b + self.params.b * float(self.doc_lengths[row]) / self.avg_doc_length
            with np.errstate(divide="ignore", invalid="ignore"):
                tf = np.rint(self.params.k1 * norm * x / (1 - x)) if self.params.k1 > 0 else np.full_like(x, np.nan)
        else:
            tf = np.full_like(weights, np.nan)
        return terms, tf, weights

    def _matrix_csc(self) -> Any:
        if self._csc is None:
            import scipy.sparse as sp

            sc = self.model.scores
            self._csc = sp.csc_matrix((np.asarray(sc["data"]), np.asarray(sc["indices"]), np.asarray(sc["indptr"])),
                                      shape=(self.n_docs, len(sc["indptr"]) - 1))
        return self._csc

    def _matrix_csr(self) -> Any:
        if self._csr is None:
            self._csr = self._matrix_csc().tocsr()
        return self._csr


def top_k(scores: np.ndarray, k: int, candidates: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Rows of the k best scores, descending, ties by lower row; rows that are not candidates (default: score ≤ 0,
    i.e. no query term) are left out, so fewer than k may come back."""
    ok = scores > 0 if candidates is None else candidates
    rows = np.flatnonzero(ok)
    if len(rows) > k:
        vals = scores[rows]
        kth = np.partition(vals, len(vals) - k)[len(vals) - k]  # the k-th largest score
        rows = rows[vals >= kth]  # every row tied with the k-th is kept, then cut after the stable sort
    order = np.argsort(-scores[rows], kind="stable")[:k]  # rows ascend, so a stable sort breaks ties by lower row
    rows = rows[order].astype(np.int64)
    return scores[rows].astype(np.float32), rows


CHUNK_TOKENS = 8_000_000  # tokens tokenised per chunk of the first pass (~80k passages of ~100 words)
BLOCK_POSTINGS = 8_000_000  # postings merged per block of terms in the second pass


def build_on_disk(texts: Iterable[str], folder: Path, params: BM25Params | None = None, corpus_fingerprint: str = "",
                  n_docs: int | None = None, progress: Any = None, chunk_tokens: int = CHUNK_TOKENS,
                  block_postings: int = BLOCK_POSTINGS) -> None:
    """Write the bm25s index of a stream of documents into `folder` in bounded memory (module docstring); the folder
    then loads with `BM25Index.load`. `progress(1)` is called per document tokenised."""
    import bm25s

    params = params or BM25Params()
    params.validate()
    tokenizer = make_tokenizer(params)
    folder.mkdir(parents=True, exist_ok=True)
    work = folder / "build"
    work.mkdir()
    chunks = _Postings(work)
    flat = array("i")
    lengths: list[int] = []
    for ids in tokenizer.streaming_tokenize(texts, update_vocab=True):
        flat.extend(ids)
        lengths.append(len(ids))
        if progress is not None:
            progress(1)
        if len(flat) >= chunk_tokens:
            chunks.add(flat, lengths)
            flat, lengths = array("i"), []
    chunks.add(flat, lengths)
    chunks.close()
    del flat, lengths
    n = chunks.n_docs
    if n == 0:
        raise BenchError("bm25: the corpus has no documents")
    if n_docs is not None and n != n_docs:
        raise BenchError(f"bm25: the corpus stream gave {n} documents, expected {n_docs}")
    vocab = tokenizer.get_vocab_dict()
    model = bm25s.BM25(k1=params.k1, b=params.b, method=params.method)
    n_vocab = len(vocab)
    df = np.zeros(n_vocab, dtype=np.int64)
    df[: len(chunks.df)] = chunks.df
    doc_lengths = np.fromfile(chunks.lengths_path, dtype=np.int32)
    avg_doc_len = np.float64(chunks.n_tokens) / n  # = bm25s's mean of the lengths: an exact integer sum
    from bm25s.scoring import _build_nonoccurrence_array, _select_idf_scorer, _select_tfc_scorer

    idf_fn = _select_idf_scorer(model.idf_method)
    idf = np.zeros(n_vocab, dtype=model.dtype)
    for t, d in enumerate(df.tolist()):  # bm25s's loop: its idf in Python floats, stored as float32
        if d:
            idf[t] = idf_fn(d, N=n)
    nonocc = None
    if model.method in model.methods_requiring_nonoccurrence:
        nonocc = _build_nonoccurrence_array(dict(enumerate(df.tolist())), n, idf_fn, _select_tfc_scorer(model.method),
                                            avg_doc_len, avg_doc_len, model.k1, model.b, model.delta, model.dtype)
    tfc_fn = _select_tfc_scorer(model.method)
    nnz = int(df.sum())
    with open(folder / "data.csc.index.npy", "wb") as data_fh, open(folder / "indices.csc.index.npy", "wb") as ind_fh:
        _npy_header(data_fh, np.dtype(model.dtype), nnz)
        _npy_header(ind_fh, np.dtype(np.int32), nnz)
        for cols, rows, tf in chunks.merged(df, block_postings):
            tfc = tfc_fn(tf_array=tf.astype(model.dtype), l_d=doc_lengths[rows], l_avg=avg_doc_len, k1=model.k1,
                         b=model.b, delta=model.delta)
            weights = idf[cols] * tfc  # float32 idf × float64 tf part, as bm25s; stored as float32
            if nonocc is not None:
                weights -= nonocc[cols]
            data_fh.write(np.ascontiguousarray(weights, dtype=model.dtype).tobytes())
            ind_fh.write(np.ascontiguousarray(rows, dtype=np.int32).tobytes())
    indptr = np.zeros(n_vocab + 1, dtype=np.int64)
    np.cumsum(df, out=indptr[1:])
    np.save(folder / "indptr.csc.index.npy", indptr)
    if nonocc is not None:
        np.save(folder / "nonoccurrence_array.index.npy", nonocc)
    with open(folder / "vocab.index.json", "w", encoding="utf-8") as fh:
        json.dump(vocab, fh, ensure_ascii=False)
    with open(folder / "params.index.json", "w") as fh:  # what bm25s's save() writes
        json.dump({"k1": model.k1, "b": model.b, "delta": model.delta, "method": model.method,
                   "idf_method": model.idf_method, "dtype": model.dtype, "int_dtype": model.int_dtype,
                   "num_docs": n, "version": bm25s.__version__, "backend": model.backend}, fh, indent=4)
    tokenizer.save_vocab(str(folder))
    tokenizer.save_stopwords(str(folder))
    np.save(folder / "doc_lengths.npy", doc_lengths)
    meta = {"params": asdict(params), "corpus_fingerprint": corpus_fingerprint, "bm25s": _bm25s_version(),
            "n_docs": n, "built": "on disk, in chunks"}
    (folder / "bench_meta.json").write_text(json.dumps(meta, indent=1))
    chunks.remove()


def _npy_header(fh: Any, dtype: np.dtype, n: int) -> None:
    """The header of a 1-d .npy file of n values, whose data are then appended."""
    np.lib.format.write_array_header_2_0(fh, {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False,
                                              "shape": (n,)})


class _Postings:
    """The first pass's chunks on disk: per chunk its postings (document row, term frequency) sorted by (term, row),
    and a directory of the chunk's terms with their posting counts; the document lengths; and the running document
    frequencies. `merged` reads them back a block of terms at a time."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.lengths_path = work / "lengths.bin"
        self.files = {name: open(work / f"{name}.bin", "wb") for name in ("rows", "tf", "terms", "counts", "lengths")}
        self.chunks: list[tuple[int, int, int, int]] = []  # (postings offset, postings, directory offset, terms)
        self.df = np.zeros(0, dtype=np.int64)
        self.n_docs = 0
        self.n_tokens = 0
        self._postings = 0
        self._terms = 0

    def add(self, flat: array, lengths: list[int]) -> None:
        if not lengths:
            return
        tok = np.frombuffer(flat, dtype=np.int32).astype(np.int64)
        lens = np.asarray(lengths, dtype=np.int64)
        docs = np.repeat(np.arange(self.n_docs, self.n_docs + len(lens), dtype=np.int64), lens)
        keys, tf = np.unique((tok << 32) | docs, return_counts=True)  # sorted by (term, row); tf = repeats
        terms = (keys >> 32).astype(np.int32)
        rows = (keys & 0xFFFFFFFF).astype(np.int32)
        uterms, counts = np.unique(terms, return_counts=True)
        if len(uterms) and uterms[-1] >= len(self.df):
            self.df = np.concatenate([self.df, np.zeros(int(uterms[-1]) + 1 - len(self.df), dtype=np.int64)])
        self.df[uterms] += counts  # one posting per (term, document): its document frequency
        self.files["rows"].write(rows.tobytes())
        self.files["tf"].write(tf.astype(np.int32).tobytes())
        self.files["terms"].write(uterms.astype(np.int32).tobytes())
        self.files["counts"].write(counts.astype(np.int64).tobytes())
        self.files["lengths"].write(lens.astype(np.int32).tobytes())
        self.chunks.append((self._postings, len(rows), self._terms, len(uterms)))
        self._postings += len(rows)
        self._terms += len(uterms)
        self.n_docs += len(lens)
        self.n_tokens += int(lens.sum())

    def merged(self, df: np.ndarray, block_postings: int) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """(terms, rows, tf) of every posting in (term, row) order, a block of consecutive terms at a time."""
        ends = np.cumsum(df)
        # block b = terms [starts[b], starts[b + 1]): each ends at the first term where another `block_postings`
        # postings are reached, so a block holds about that many (one very frequent term may hold more)
        cuts = np.searchsorted(ends, np.arange(block_postings, int(ends[-1]), block_postings)) + 1
        starts = np.unique(np.concatenate([[0], np.minimum(cuts, len(df)), [len(df)]]))
        plan = []  # per chunk: directory and posting offsets where each block starts
        for p_off, _, t_off, n_terms in self.chunks:
            uterms = _read(self.work / "terms.bin", np.int32, t_off, n_terms)
            counts = _read(self.work / "counts.bin", np.int64, t_off, n_terms)
            at = np.searchsorted(uterms, starts)
            plan.append((t_off + at, p_off + np.concatenate([[0], np.cumsum(counts)])[at]))
        for b in range(len(starts) - 1):
            parts = []
            for t_at, p_at in plan:
                t0, t1, q0, q1 = int(t_at[b]), int(t_at[b + 1]), int(p_at[b]), int(p_at[b + 1])
                if q1 == q0:
                    continue
                uterms = _read(self.work / "terms.bin", np.int32, t0, t1 - t0)
                counts = _read(self.work / "counts.bin", np.int64, t0, t1 - t0)
                parts.append((np.repeat(uterms, counts), _read(self.work / "rows.bin", np.int32, q0, q1 - q0),
                              _read(self.work / "tf.bin", np.int32, q0, q1 - q0)))
            if not parts:
                continue
            terms = np.concatenate([p[0] for p in parts])
            order = np.argsort(terms, kind="stable")  # chunks are in row order, so rows ascend within a term
            yield (terms[order], np.concatenate([p[1] for p in parts])[order],
                   np.concatenate([p[2] for p in parts])[order])

    def close(self) -> None:
        for fh in self.files.values():
            fh.close()

    def remove(self) -> None:
        import shutil

        self.close()
        shutil.rmtree(self.work, ignore_errors=True)


def _read(path: Path, dtype: Any, start: int, count: int) -> np.ndarray:
    """`count` values of `dtype` from item `start` of a raw file (a plain read: no mapping kept in memory)."""
    dt = np.dtype(dtype)
    return np.fromfile(path, dtype=dt, count=count, offset=start * dt.itemsize)


def _corpus_texts(corpus: Any) -> Iterator[str]:
    for _, title, text in corpus.iter_texts():
        yield document_text(title, text)


def bm25_cache_key(corpus_fingerprint: str, params: BM25Params) -> str:
    return stable_hash(["bm25", corpus_fingerprint, asdict(params), _bm25s_version()], length=24)


def load_or_build_bm25(corpus: Any, params: BM25Params | None = None, cache: bool = True,
                       progress: Any = None, recipe: Recipe | None = None) -> BM25Index:
    """The BM25 index of a bench Corpus (`fingerprint`, `iter_texts()`, `len`), from the cache when present.

    The index is a verified cache entry (bench/storage/cache.py: manifest, file lock, a damaged entry is rebuilt).
    `progress(n)` is called as documents are tokenised (for a progress bar); `recipe` goes into its manifest."""
    params = params or BM25Params()
    params.validate()

    def build_index() -> BM25Index:
        return BM25Index.build(_corpus_texts(corpus), params, corpus.fingerprint, n_docs=len(corpus),
                               progress=progress)

    if not cache:
        return build_index()
    folder = cache_root() / "bm25" / bm25_cache_key(corpus.fingerprint, params)

    def build(tmp: Path) -> None:  # bounded memory: the index goes to disk as it is built
        build_on_disk(_corpus_texts(corpus), tmp, params, corpus.fingerprint, n_docs=len(corpus), progress=progress)

    def load(path: Path) -> BM25Index:
        return BM25Index.load(path)

    info = {"corpus_fingerprint": corpus.fingerprint, **asdict(params)}
    return load_or_build(folder, build, load, folder=True, packages=("bm25s", "PyStemmer"), info=info, recipe=recipe)
