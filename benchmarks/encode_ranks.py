"""Corpus encoding with 1 and with 2 processes (torchrun, gloo, CPU) on the same corpus: throughput and its ratio.

    python benchmarks/encode_ranks.py [--docs 1200] [--shard-size 64] [--output FILE.json]

The corpus is the first --docs articles of ../shared/data/wiki-vital as a BEIR folder (tests/support/wiki_beir.py).
Each configuration runs `bench encode --task beir --retriever minilm --device cpu` from an empty cache, one torch
thread per process (OMP_NUM_THREADS=1), through tests/support/cpu_timed.py, which records every process's CPU time.
Reported: wall seconds of the whole command (start-up included) and passages per second over it; passages per second
of the encoding alone (from the first shard file written to the last, counting the passages written after each
process's first shard); CPU seconds of all processes together; 2 processes against 1. The shards of both runs are
checked to be byte-identical.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def encode(procs: int, data: Path, work: Path, shard_size: int, n_docs: int) -> dict[str, float]:
    cache, cpu = work / f"cache-{procs}", work / f"cpu-{procs}"
    for folder in (cache, cpu):
        shutil.rmtree(folder, ignore_errors=True)
    env = dict(os.environ, BENCH_CACHE_DIR=str(cache), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONPATH=str(REPO))
    args = [str(REPO / "tests" / "support" / "cpu_timed.py"), str(cpu), "encode", "--task", "beir", "-t",
            f"data_dir={data}", "--retriever", "minilm", "-r", f"shard_size={shard_size}", "--device", "cpu"]
    cmd = [sys.executable, *args] if procs == 1 else \
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(procs), *args]
    with open("/proc/loadavg") as fh:
        load_before = float(fh.read().split()[0])
    t = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t
    if done.returncode != 0:
        raise SystemExit(f"{procs} process(es) failed:\n{done.stderr[-3000:]}")
    with open("/proc/loadavg") as fh:
        load_after = float(fh.read().split()[0])
    cpu_s = [json.loads((cpu / f"cpu-{r}.json").read_text())["cpu_s"] for r in range(procs)]
    # the encoding alone, start-up left out: from the first shard written to the last, the passages written after each
    # rank's first shard
    stamps = sorted(p.stat().st_mtime for p in (cache / "embeddings").rglob("shard-*.npy"))
    span = stamps[-1] - stamps[0]
    rows_after_first = n_docs - procs * shard_size  # every rank's first shard is a full one
    return {"wall_s": wall, "cpu_s": sum(cpu_s), "cpu_per_process": cpu_s, "load_before": load_before,
            "load_after": load_after, "encode_span_s": span, "encode_rate": rows_after_first / span}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--docs", type=int, default=1200)
    ap.add_argument("--queries", type=int, default=10)
    ap.add_argument("--shard-size", type=int, default=64)
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "bench-encode-ranks")
    ap.add_argument("--output", type=Path, default=None)
    args = ap.parse_args()
    from tests.support.wiki_beir import make_wiki_beir

    args.work.mkdir(parents=True, exist_ok=True)
    data = make_wiki_beir(args.work / "data", args.docs, args.queries)
    results = {procs: encode(procs, data, args.work, args.shard_size, args.docs) for procs in (1, 2)}
    shards = [sorted((args.work / f"cache-{p}" / "embeddings").rglob("shard-*.npy")) for p in (1, 2)]
    identical = len(shards[0]) == len(shards[1]) and all(a.read_bytes() == b.read_bytes()
                                                         for a, b in zip(*shards, strict=True))
    print(f"{args.docs} passages (wiki-vital), minilm, CPU, {len(shards[0])} shards of ≤{args.shard_size}; "
          f"shards identical: {identical}")
    print("| processes | wall (s) | passages / s, whole command | passages / s, encoding | CPU, all processes (s) | "
          "load avg before → after |")
    print("|---:|---:|---:|---:|---:|---|")
    for procs, r in results.items():
        print(f"| {procs} | {r['wall_s']:.1f} | {args.docs / r['wall_s']:.1f} | {r['encode_rate']:.1f} | "
              f"{r['cpu_s']:.1f} | {r['load_before']} → {r['load_after']} |")
    speedup = results[1]["wall_s"] / results[2]["wall_s"]
    encode_speedup = results[2]["encode_rate"] / results[1]["encode_rate"]
    cpu_ratio = results[2]["cpu_s"] / results[1]["cpu_s"]
    print(f"2 processes: throughput ×{speedup:.2f} of one process (whole command), ×{encode_speedup:.2f} (encoding "
          f"alone); CPU time ×{cpu_ratio:.2f}")
    if args.output:
        args.output.write_text(json.dumps({"docs": args.docs, "shard_size": args.shard_size, "identical": identical,
                                           "results": results, "speedup": speedup, "encode_speedup": encode_speedup,
                                           "cpu_ratio": cpu_ratio}, indent=1))
    if not identical:
        raise SystemExit("the shards of 1 and 2 processes differ")


if __name__ == "__main__":
    main()
