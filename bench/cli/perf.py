"""`bench perf`: the harness's encoding, search and cache against the bare libraries, measured in one run.

On the ~10k real Wikipedia passages of ../shared/data/wiki-vital (`--corpus` to point elsewhere), with all-MiniLM-L6-v2:
1. encoding throughput: the harness's cold corpus index (stream the file, encode in shards, write them, build the
   FAISS index) against one bare `SentenceTransformer.encode` of the same texts, already in memory, best of
   `--encode-repeats` per side, alternating which goes first (target ≥ 0.95×);
2. search: `FlatIndex.search` (query normalisation, deterministic tie order) against a bare
   `faiss.IndexFlatIP.search` on the same normalised vectors, best of `--search-repeats` (target ≥ 0.95×);
3. cache: the same corpus index again from a new retriever (a rerun), against the cold one (≥ 10×).
Every cold encode writes its shards under an embedding space of its own (the model's, tagged with this run's token),
so it is cold whatever the cache holds; those entries are removed afterwards and the user's cache is left as it was.
Figures depend on the machine and its load: run on a quiet machine, and read them as ratios.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from bench.cli.app import app
from bench.errors import BenchError
from bench.storage.atomic import atomic_open
from bench.storage.cache import cache_root, cache_root_origin

out = Console()

TARGETS = {"encode": 0.95, "search": 0.95, "cache": 10.0}


def default_corpus() -> Path:
    from bench.data.paths import shared_data_candidates

    for folder in shared_data_candidates("wiki-vital"):
        if (folder / "summaries_en-us.json").is_file():
            return folder / "summaries_en-us.json"
    raise BenchError("no wiki-vital data found beside the repository; pass --corpus PATH/summaries_en-us.json")


def _best(fn: Any, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


@app.command("perf")
def perf(
    scale: bool = typer.Option(False, "--scale", help="index kinds on a generated corpus (1M × 384 by default): "
                               "build time, queries/s, peak memory, recall@k vs exact, beside bare FAISS"),
    rows: int = typer.Option(1_000_000, "--rows", help="--scale: corpus size"),
    dim: int = typer.Option(384, "--dim", help="--scale: vector dimension"),
    kinds: str = typer.Option("flat,flat-mmap,hnsw,ivf,ivfpq", "--kinds",
                              help="--scale: index kinds (or FAISS factory strings), comma-separated"),
    rescore: int = typer.Option(1000, "--rescore", help="--scale: also run ivfpq re-scoring its top N exactly "
                                "(0 = skip)"),
    threads: int = typer.Option(0, "--threads", help="--scale: FAISS OpenMP threads on both sides (0 = all cores; "
                                "1 on a busy shared CPU)"),
    load: int = typer.Option(0, "--load", help="--scale: this many extra processes, each burning one core, while "
                             "the searches are timed (a parallel load)"),
    limit: int = typer.Option(None, "--limit", help="use only the first N passages (a quicker, rougher run)"),
    corpus: Path = typer.Option(None, "--corpus", help="wiki-vital summaries JSON (default: ../shared/data)"),
    batch_size: int = typer.Option(32, "--batch-size", help="encoding batch size (the same for both sides)"),
    queries: int = typer.Option(1000, "--queries", help="number of search queries (article descriptions; --scale: "
                                "generated, default 2500)"),
    depth: int = typer.Option(100, "--depth", help="search depth (top-k per query)"),
    encode_repeats: int = typer.Option(2, "--encode-repeats", help="full encodes per side (alternating); best counts"),
    search_repeats: int = typer.Option(5, "--search-repeats", help="searches per side; the best time counts "
                                       "(--scale: default 2)"),
    output: Path = typer.Option(None, "--output", help="also write the figures as JSON here"),
) -> None:
    """Measure harness encoding, search and cache against bare sentence-transformers / FAISS; print the ratios.

    Run it on a quiet machine: on 2 shared CPU cores the 10k passages take 4-8 min per full encode. With --scale:
    the index kinds on a generated corpus instead (see bench/cli/perf_scale.py)."""
    if scale:
        from bench.cli.perf_scale import run_scale

        run_scale(rows=rows, dim=dim, queries=queries if queries != 1000 else 2500, k=depth,
                  kinds=[x.strip() for x in kinds.split(",") if x.strip()], rescore=rescore,
                  repeats=search_repeats if search_repeats != 5 else 2, output=output, console=out, threads=threads,
                  load=load)
        return
    import faiss
    import torch
    from sentence_transformers import SentenceTransformer

    from bench.data.corpus import WikiSummariesCorpus, document_text
    from bench.data.task import Corpus
    from bench.index import IndexSpec, corpus_store, l2_normalise, open_index
    from bench.index.encode import CorpusEncoder
    from bench.storage.preflight import check_writable
    from bench.systems.retriever import TextEncoderRetriever, build_retriever

    if limit is not None and limit <= 0:
        raise BenchError("--limit must be > 0")
    if encode_repeats <= 0 or search_repeats <= 0:
        raise BenchError("--encode-repeats and --search-repeats must be > 0")
    path = corpus or default_corpus()
    reader = WikiSummariesCorpus(path, limit=limit)
    scan = reader.scan()
    corpus_ = Corpus(scan.ids, scan.fingerprint, source=reader)
    texts = [document_text(title, text) for _, title, text in reader.iter_documents()]
    n = len(texts)
    words = float(np.median([len(t.split()) for t in texts]))
    out.print(f"corpus {escape(str(path))}: {n} passages (median {words:.0f} words); torch threads "
              f"{torch.get_num_threads()}, batch size {batch_size}")
    check_writable(cache_root(), f"cache folder ({cache_root_origin()})")
    token = f"bench-perf-{os.getpid()}-{time.time_ns()}"
    written: list[Path] = []

    def harness_index(retriever: TextEncoderRetriever, tag: str) -> tuple[Any, Any]:
        """The corpus store and flat index as a run builds them, under this run's own embedding space `tag`."""
        encoder = CorpusEncoder(f"{token}-{tag}:{retriever.space()}",
                                lambda chunk, advance: retriever.encode(chunk, "document", advance),
                                shard_size=retriever.params.shard_size, describe=retriever.encoder_record())
        written.append(encoder.shard_store(corpus_).root)
        store = corpus_store(corpus_, encoder)
        return store, open_index(IndexSpec(), store, "cpu")

    def minilm() -> TextEncoderRetriever:
        retriever = build_retriever("minilm", {"batch_size": batch_size, "device": "cpu"})
        assert isinstance(retriever, TextEncoderRetriever)
        return retriever

    try:
        retriever = minilm()
        bare_model = SentenceTransformer(retriever.info()["model_path"], device="cpu", local_files_only=True)
        warm = texts[: min(64, n)]
        bare_model.encode(warm, batch_size=batch_size)  # first-call costs (allocations, lazy init) on both sides
        retriever.encode(warm, "query")

        t_bare: list[float] = []
        t_cold: list[float] = []
        for rep in range(encode_repeats):  # alternate which side goes first, so a change of load hits both alike
            for side in (("bare", "harness") if rep % 2 == 0 else ("harness", "bare")):
                if side == "bare":
                    out.print(f"[bold]encode {rep + 1}/{encode_repeats}[/] bare SentenceTransformer.encode …")
                    t = time.perf_counter()
                    bare = bare_model.encode(texts, batch_size=batch_size, convert_to_numpy=True,
                                             show_progress_bar=False)
                    t_bare.append(time.perf_counter() - t)
                else:
                    out.print(f"[bold]encode {rep + 1}/{encode_repeats}[/] harness corpus index, cold (stream, "
                              f"encode in shards, cache, index) …")
                    t = time.perf_counter()
                    emb, index = harness_index(retriever, f"cold{rep}")
                    t_cold.append(time.perf_counter() - t)
        diff = float(np.abs(np.asarray(emb) - l2_normalise(bare)).max())

        out.print("[bold]cache[/] harness corpus index, rerun from the cache (new retriever) …")
        t = time.perf_counter()
        emb2, index2 = harness_index(minilm(), "cold0")  # keep index2: emb2 is a view into it
        t_warm = time.perf_counter() - t
        if not np.array_equal(np.asarray(emb2), np.asarray(emb)):
            raise BenchError("the cached rerun returned different embeddings")

        out.print("[bold]search[/] bare FAISS vs FlatIndex.search …")
        descriptions = [d or title for d, title in _descriptions(path, limit)]
        qtexts = (descriptions * (queries // max(1, len(descriptions)) + 1))[:queries]
        q = retriever.encode(qtexts, "query")
        qn = l2_normalise(q)
        bare_index = faiss.IndexFlatIP(index.dim)
        bare_index.add(np.ascontiguousarray(np.asarray(index.store), dtype=np.float32))  # the same vectors
        t_faiss, t_harness = [], []
        for _ in range(search_repeats):  # alternate the two sides so load changes hit both alike
            t_faiss.append(_best(lambda: bare_index.search(qn, depth), 1))
            t_harness.append(_best(lambda: index.search(q, depth), 1))
        _, rows_bare = bare_index.search(qn, depth)
        _, rows_harness = index.search(q, depth)
        same_rank = float(np.mean(rows_bare == rows_harness))
    finally:
        for folder in written:
            shutil.rmtree(folder, ignore_errors=True)

    t_cold_cached_run = min(t_cold)  # the conservative cold figure
    figures: dict[str, Any] = {
        "corpus": str(path), "passages": n, "median_words": words, "batch_size": batch_size,
        "torch_threads": torch.get_num_threads(), "queries": len(qtexts), "k": depth,
        "encode_repeats": encode_repeats, "bare_encode_s": t_bare, "harness_cold_s": t_cold,
        "harness_cached_s": t_warm, "bare_passages_per_s": n / min(t_bare), "harness_passages_per_s": n / min(t_cold),
        "encode_ratio": min(t_bare) / min(t_cold), "max_abs_diff_vs_bare": diff,
        "bare_search_s": min(t_faiss), "harness_search_s": min(t_harness),
        "search_ratio": min(t_faiss) / min(t_harness), "same_rows_as_bare": same_rank,
        "cache_speedup": t_cold_cached_run / t_warm,
    }
    table = Table(title=f"bench perf — {n} wiki-vital passages, all-MiniLM-L6-v2, CPU")
    for col in ("measure", "bare", "harness", "ratio", "target", "ok"):
        table.add_column(col, justify="left" if col == "measure" else "right")

    def row(name: str, bare_v: str, harness_v: str, ratio: float, key: str) -> None:
        ok = ratio >= TARGETS[key]
        table.add_row(name, bare_v, harness_v, f"{ratio:.3f}×", f"≥ {TARGETS[key]}×", "[green]yes[/]" if ok else
                      "[red]no[/]")

    row(f"encoding, best of {encode_repeats} (passages/s)", f"{n / min(t_bare):.1f}", f"{n / min(t_cold):.1f}",
        figures["encode_ratio"], "encode")
    row(f"search {len(qtexts)}×top-{depth} (s)", f"{min(t_faiss):.4f}", f"{min(t_harness):.4f}",
        figures["search_ratio"],
        "search")
    row("corpus index: cold vs cached (s)", f"{t_cold_cached_run:.2f}", f"{t_warm:.3f}", figures["cache_speedup"],
        "cache")
    out.print(table)
    out.print(f"harness vs bare embeddings: max |Δ| = {diff:.2e} (shards batch differently); "
              f"search rows identical to bare FAISS: {same_rank:.4f}")
    if output:
        with atomic_open(output) as fh:
            json.dump(figures, fh, indent=1)
        out.print(f"[dim]figures written to {escape(str(output))}[/]", highlight=False)


def _descriptions(path: Path, limit: int | None) -> list[tuple[str, str]]:
    data = json.loads(Path(path).read_bytes())
    items = list(data.values())[: limit or None]
    return [(str(rec.get("description") or ""), str(rec.get("title") or "")) for rec in items]
