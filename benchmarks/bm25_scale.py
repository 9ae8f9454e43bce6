"""Peak memory and time of building the BM25 index (bench/index/bm25.py) as the corpus grows.

    python benchmarks/bm25_scale.py --n 1000000,4000000 [--builders memory,disk] [--output FILE.json]

For each corpus size a TSV of generated passages (~100 words each, words drawn from wiki-vital's word frequencies,
seeded: benchmarks/data_scale.py `generate_tsv`) is written once under --work; then every (size, builder) pair runs
in a process of its own with a fresh cache, so its peak RSS (`ru_maxrss`, the same figure `/usr/bin/time -v` prints
as "Maximum resident set size") is that build's alone:

  memory  `BM25Index.build`: bm25s over every document's token ids held in memory, then saved (the build before the
          bounded one, kept for small in-memory indexes)
  disk    `load_or_build_bm25`: the bounded build — tokenised in chunks written to disk, merged into the on-disk
          sparse index, memory-mapped for search

The corpus scan (ids + fingerprint) runs first in the same process and is timed apart. Printed as a table and written
as JSON (`--output`). `--vocab N` draws the words from N made-up words instead, for an index whose vocabulary is as
large as a real Wikipedia's (the tokenizer's vocabulary is what a bounded build still holds in memory).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(builder: str, corpus: str) -> dict[str, float]:
    """One build in this process: scan, then the index build; wall seconds, peak RSS, index size on disk."""
    from bench.data.corpus import open_corpus
    from bench.data.task import Corpus
    from bench.index.bm25 import BM25Index, BM25Params, _corpus_texts, load_or_build_bm25

    t = time.perf_counter()
    reader = open_corpus(corpus)
    scan = reader.scan()
    corpus_obj = Corpus(scan.ids, scan.fingerprint, source=reader)
    out: dict[str, float] = {"scan_s": time.perf_counter() - t, "scan_peak_mb": peak_mb()}
    t = time.perf_counter()
    if builder == "memory":
        folder = Path(tempfile.mkdtemp(prefix="bm25-memory-"))
        index = BM25Index.build(_corpus_texts(corpus_obj), BM25Params(), scan.fingerprint, n_docs=len(scan.ids))
        index.save(folder)
        index.path = folder
    elif builder == "disk":
        index = load_or_build_bm25(corpus_obj, BM25Params())
    else:
        raise SystemExit(f"unknown builder {builder}")
    out["build_s"] = time.perf_counter() - t
    out["peak_rss_mb"] = peak_mb()
    assert index.path is not None
    out["index_mb"] = sum(f.stat().st_size for f in index.path.iterdir()) / 2**20
    out["n_docs"] = float(index.n_docs)
    out["n_terms"] = float(len(index.model.vocab_dict))
    return out


def generate_vocab_tsv(path: Path, n: int, vocab: int, seed: int = 0) -> None:
    """n passages of 100 words drawn uniformly from `vocab` distinct made-up words (4–12 letters, seeded), so that the
    index's vocabulary is about `vocab` terms: the size of a real Wikipedia's, which the wiki-vital words of
    `generate_tsv` (about 60k) are far from."""
    import numpy as np

    rng = np.random.default_rng(seed)
    letters = np.frombuffer(b"abcdefghijklmnopqrstuvwxyz", dtype=np.uint8)
    words: list[str] = []
    seen: set[str] = set()
    while len(words) < vocab:
        lens = rng.integers(4, 13, vocab)
        raw = letters[rng.integers(0, 26, (vocab, 12))]
        for row, k in zip(raw, lens, strict=True):
            w = row[:k].tobytes().decode()
            if w not in seen:
                seen.add(w)
                words.append(w)
                if len(words) == vocab:
                    break
    del seen
    table = np.array(words, dtype=object)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write("id\ttext\ttitle\n")
        for lo in range(0, n, 10_000):
            m = min(10_000, n - lo)
            picks = table[rng.integers(0, vocab, (m, 100))]
            for i in range(m):
                fh.write(f"{lo + i}\t{' '.join(picks[i, 2:])}\t{' '.join(picks[i, :2])}\n")
    os.replace(tmp, path)


def run_one(builder: str, corpus: Path, work: Path) -> dict[str, float]:
    cache = Path(tempfile.mkdtemp(prefix="cache-", dir=work))
    env = dict(os.environ, BENCH_CACHE_DIR=str(cache), HF_HUB_OFFLINE="1", TMPDIR=str(work))
    cmd = [sys.executable, __file__, "--measure", builder, "--corpus", str(corpus)]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    subprocess.run(["rm", "-rf", str(cache)], check=False)
    if res.returncode != 0:
        raise SystemExit(f"{builder} on {corpus} failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--measure", help=argparse.SUPPRESS)
    ap.add_argument("--corpus", help=argparse.SUPPRESS)
    ap.add_argument("--n", default="1000000,4000000", help="passages per generated corpus, comma-separated")
    ap.add_argument("--builders", default="memory,disk")
    ap.add_argument("--vocab", type=int, default=0,
                    help="draw the passages' words from this many made-up words instead of wiki-vital's")
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "bench-data-scale")
    ap.add_argument("--output", type=Path, default=None)
    args = ap.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, args.corpus)))
        return
    from data_scale import generate_tsv

    args.work.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict[str, dict[str, float]]] = {}
    for n in (int(x) for x in args.n.split(",")):
        tsv = args.work / (f"passages-{n}-vocab-{args.vocab}.tsv" if args.vocab else f"passages-{n}.tsv")
        if not tsv.exists():
            t = time.perf_counter()
            if args.vocab:
                generate_vocab_tsv(tsv, n, args.vocab)
            else:
                generate_tsv(tsv, n)
            print(f"generated {tsv} ({tsv.stat().st_size / 2**20:.0f} MB) in {time.perf_counter() - t:.0f} s",
                  flush=True)
        for builder in args.builders.split(","):
            with open("/proc/loadavg") as fh:
                load_before = fh.read().split()[0]
            r = run_one(builder, tsv, args.work)
            with open("/proc/loadavg") as fh:
                r["load_before"], r["load_after"] = float(load_before), float(fh.read().split()[0])
            r["vocab"] = float(args.vocab)
            results.setdefault(str(n), {})[builder] = r
            print(f"{n:>10,} {builder:>6}: build {r['build_s']:8.1f} s  peak {r['peak_rss_mb']:8.0f} MB  "
                  f"index {r['index_mb']:7.0f} MB  (load {r['load_before']} → {r['load_after']})", flush=True)
    print("\n| passages | terms | builder | build (s) | peak RSS (MB) | index on disk (MB) |")
    print("|---:|---:|---|---:|---:|---:|")
    for n, per in results.items():
        for builder, r in per.items():
            print(f"| {int(n):,} | {int(r['n_terms']):,} | {builder} | {r['build_s']:.0f} | {r['peak_rss_mb']:,.0f} | "
                  f"{r['index_mb']:,.0f} |")
    if args.output:
        args.output.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
