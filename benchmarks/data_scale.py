"""Corpus-side cost of the real tasks: fingerprinting + BM25 indexing + gold mapping, cold and from the caches.

    python benchmarks/data_scale.py                      # wiki-vital and a generated 1M-passage TSV
    python benchmarks/data_scale.py --n 200000 --skip-wiki

For each corpus, every phase runs in its own process (so peak RSS is that phase's own), with one fresh cache folder
per corpus:
  fingerprint  `scan()` of the corpus file (validate, id table, sha256)      vs  plain hashlib sha256 of the file
  bm25         bench.index.bm25 tokenise + index + save                          vs  plain bm25s.tokenize + BM25.index
  mapping      the AmbigQA procedure on the AmbigNQ files (BM25 candidates, depth 500; the dense list is left out:
               encoding 1M passages with MiniLM on CPU is H12's benchmark), corpus scan and BM25 from the caches
  rerun        the same task load again: everything served from the caches
The 1M-passage TSV (`id<TAB>text<TAB>title`, ~100 words per passage, words drawn from wiki-vital's vocabulary by
their frequency, seeded) is generated once under --work. Figures are printed as a table and written as JSON.
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
SHARED = REPO.parent / "shared" / "data"
WIKI = SHARED / "wiki-vital" / "summaries_en-us.json"
AMBIGNQ = SHARED / "ambignq"


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def generate_tsv(path: Path, n: int, seed: int = 0) -> None:
    """n passages of ~100 words drawn from wiki-vital's word frequencies (seeded), titles of 1–3 words."""
    import re
    from collections import Counter

    import numpy as np

    data = json.loads(WIKI.read_bytes())
    counts = Counter(w for rec in data.values() for w in re.findall(r"\w+", rec.get("extract", "")))
    words = np.array(list(counts))
    p = np.array(list(counts.values()), dtype=np.float64)
    p /= p.sum()
    rng = np.random.default_rng(seed)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write("id\ttext\ttitle\n")
        block = 10_000
        for lo in range(0, n, block):
            m = min(block, n - lo)
            toks = words[rng.choice(len(words), size=(m, 103), p=p)]
            lens = rng.integers(80, 101, m)
            for i in range(m):
                title = " ".join(toks[i, :1 + i % 3])
                fh.write(f"{lo + i}\t{title}. {' '.join(toks[i, 3:3 + lens[i]])}\t{title}\n")
    os.replace(tmp, path)


def phase(name: str, corpus: str) -> dict[str, float]:
    """One phase in this process; returns wall seconds and peak RSS."""
    from bench.data.corpus import open_corpus
    from bench.storage.cache import file_sha256

    t = time.perf_counter()
    out: dict[str, float] = {}
    if name == "fingerprint":
        open_corpus(corpus).scan(force_hash=True)
    elif name == "plain-sha256":
        file_sha256(corpus)
    elif name == "bm25":
        from bench.data.task import Corpus
        from bench.index.bm25 import load_or_build_bm25

        reader = open_corpus(corpus)
        scan = reader.scan()
        t = time.perf_counter()  # the scan is served from the cache of the fingerprint phase
        index = load_or_build_bm25(Corpus(scan.ids, scan.fingerprint, source=reader))
        out["index_mb"] = sum(f.stat().st_size for f in index.path.iterdir()) / 2**20 if index.path else 0.0
    elif name == "plain-bm25s":
        import bm25s
        import Stemmer

        from bench.data.corpus import document_text

        texts = [document_text(ti, tx) for _, ti, tx in open_corpus(corpus).iter_documents()]
        t = time.perf_counter()
        tokens = bm25s.tokenize(texts, stopwords="en", stemmer=Stemmer.Stemmer("english"), show_progress=False)
        bm25s.BM25(k1=0.9, b=0.4).index(tokens, show_progress=False)
    elif name in ("mapping", "rerun"):
        from bench.data.task import build_task

        data = build_task("ambigqa", [f"data_dir={AMBIGNQ}", f"corpus={corpus}", "dense=none"]).load()
        out["questions_kept"] = float(sum(len(s) for s in data.splits.values()))
    else:
        raise SystemExit(f"unknown phase {name}")
    out["wall_s"] = time.perf_counter() - t
    out["peak_rss_mb"] = peak_mb()
    return out


def run_phase(name: str, corpus: Path, cache: Path) -> dict[str, float]:
    env = dict(os.environ, BENCH_CACHE_DIR=str(cache), HF_HUB_OFFLINE="1")
    cmd = [sys.executable, __file__, "--phase", name, "--corpus", str(corpus)]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise SystemExit(f"phase {name} failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--phase")
    ap.add_argument("--corpus")
    ap.add_argument("--n", type=int, default=1_000_000, help="passages in the generated TSV")
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "bench-data-scale")
    ap.add_argument("--skip-wiki", action="store_true")
    ap.add_argument("--skip-plain", action="store_true", help="skip the plain-library reference runs")
    ap.add_argument("--output", type=Path, default=None)
    args = ap.parse_args()
    if args.phase:
        print(json.dumps(phase(args.phase, args.corpus)))
        return
    args.work.mkdir(parents=True, exist_ok=True)
    corpora: list[tuple[str, Path]] = [] if args.skip_wiki else [("wiki-vital", WIKI)]
    tsv = args.work / f"passages-{args.n}.tsv"
    if not tsv.exists():
        t = time.perf_counter()
        generate_tsv(tsv, args.n)
        print(f"generated {tsv} ({tsv.stat().st_size / 2**20:.0f} MB) in {time.perf_counter() - t:.0f} s", flush=True)
    corpora.append((f"tsv-{args.n}", tsv))
    results: dict[str, dict[str, dict[str, float]]] = {}
    for label, path in corpora:
        cache = Path(tempfile.mkdtemp(prefix="cache-", dir=args.work))
        names = ["fingerprint", "bm25", "mapping", "rerun"]
        if not args.skip_plain:
            names = ["plain-sha256", "fingerprint", "plain-bm25s", "bm25", "mapping", "rerun"]
        results[label] = {}
        for name in names:
            results[label][name] = run_phase(name, path, cache)
            r = results[label][name]
            print(f"{label:>14} {name:>13}: {r['wall_s']:8.1f} s  peak {r['peak_rss_mb']:8.0f} MB", flush=True)
        results[label]["size_mb"] = {"file": path.stat().st_size / 2**20}
    print("\n| corpus | phase | wall (s) | peak RSS (MB) | vs plain |")
    print("|---|---|---:|---:|---:|")
    for label, rs in results.items():
        for name, r in rs.items():
            if "wall_s" not in r or name.startswith("plain"):
                continue
            ref = {"fingerprint": "plain-sha256", "bm25": "plain-bm25s"}.get(name)
            ratio = f"{r['wall_s'] / rs[ref]['wall_s']:.2f}×" if ref in rs else ""
            print(f"| {label} | {name} | {r['wall_s']:.1f} | {r['peak_rss_mb']:.0f} | {ratio} |")
    if args.output:
        args.output.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
