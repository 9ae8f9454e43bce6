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
as JSON (`--output`).
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
    return out


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
        tsv = args.work / f"passages-{n}.tsv"
        if not tsv.exists():
            t = time.perf_counter()
            generate_tsv(tsv, n)
            print(f"generated {tsv} ({tsv.stat().st_size / 2**20:.0f} MB) in {time.perf_counter() - t:.0f} s",
                  flush=True)
        for builder in args.builders.split(","):
            with open("/proc/loadavg") as fh:
                load_before = fh.read().split()[0]
            r = run_one(builder, tsv, args.work)
            with open("/proc/loadavg") as fh:
                r["load_before"], r["load_after"] = float(load_before), float(fh.read().split()[0])
            results.setdefault(str(n), {})[builder] = r
            print(f"{n:>10,} {builder:>6}: build {r['build_s']:8.1f} s  peak {r['peak_rss_mb']:8.0f} MB  "
                  f"index {r['index_mb']:7.0f} MB  (load {r['load_before']} → {r['load_after']})", flush=True)
    print("\n| passages | builder | build (s) | peak RSS (MB) | index on disk (MB) |")
    print("|---:|---|---:|---:|---:|")
    for n, per in results.items():
        for builder, r in per.items():
            print(f"| {int(n):,} | {builder} | {r['build_s']:.0f} | {r['peak_rss_mb']:,.0f} | {r['index_mb']:,.0f} |")
    if args.output:
        args.output.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
