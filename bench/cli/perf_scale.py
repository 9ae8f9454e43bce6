"""`bench perf --scale`: every index kind on one generated corpus, beside the bare FAISS call, in one run.

The corpus is seeded and generated (`generate`: 1,000 centres plus a shared 32-dim latent subspace plus a little
noise, unit-normalised; `rows` × `dim`, 1M × 384 by default): low intrinsic dimension like real embeddings, unlike
isotropic noise on which no approximate index can do well; the queries are drawn the same way. Ground truth is one
bare exact search (`faiss.knn`, inner product). For each kind, in its
own process (spawned, reading the data from a temporary .npy, so that its peak memory is its own):

- build: the harness's `open_index` (seeded training sample, FAISS train + add, write to the cache), seconds;
- search: the harness's `index.search` (normalisation, nprobe / efSearch, tie order, re-scoring) against the bare
  `index.search` / `faiss.knn` on the same index and queries, best of `repeats`, alternating which goes first;
- recall@k of both against the exact top k; the index's bytes; peak resident memory above the data (VmHWM after
  resetting it; for `flat-mmap` it includes the page cache of the mapped shards, which the kernel can drop).

`flat-mmap` writes the corpus as 8,192-row .npy shards (as the encoder does) and searches them memory-mapped, shard
after shard (the next group read by a thread while FAISS searches this one). Its bare counterpart is the one
`faiss.knn` over the in-memory matrix. `load` > 0 starts that many processes that each burn one core while the kinds
are measured: the ratios under a parallel load. The last table extrapolates the
memory of each kind to 25M × 1,536 (the paper's corpus and inf-retriever's dimension) from its measured bytes per
vector, scaled by dimension.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from bench.storage.atomic import atomic_open
from bench.storage.cache import remove_entry

TARGET_ROWS, TARGET_DIM, MACHINE_GIB = 25_000_000, 1536, 24
SHARD = 8192


def generate(rows: int, dim: int, seed: int, centres: int = 1000, latent: int = 32, spread: float = 0.15,
             noise: float = 0.05, sample: int = 0) -> np.ndarray:
    """Unit vectors with low intrinsic dimension, like real embeddings: a centre (one of `centres` random
    directions) + a point of a shared `latent`-dim subspace + a little isotropic noise; seeded, built in chunks.

    (Isotropic noise around the centres is not a fair test: in 384 dimensions all members of a cluster are nearly
    equidistant, and a graph index finds 18% of the true top 100 — measured on the first version of this corpus.)"""
    import faiss

    rng = np.random.default_rng([seed, 0])
    mu = rng.standard_normal((centres, dim)).astype(np.float32)
    faiss.normalize_L2(mu)
    basis = (rng.standard_normal((latent, dim)) / np.sqrt(dim)).astype(np.float32)
    out = np.empty((rows, dim), dtype=np.float32)
    step = 1 << 16
    for a in range(0, rows, step):
        b = min(rows, a + step)
        r = np.random.default_rng([seed, 1, sample, a])  # `seed`: centres and subspace; `sample`: the points
        out[a:b] = mu[r.integers(0, centres, b - a)]
        out[a:b] += spread * (r.standard_normal((b - a, latent)).astype(np.float32) @ basis)
        out[a:b] += (noise / np.sqrt(dim)) * r.standard_normal((b - a, dim)).astype(np.float32)
    faiss.normalize_L2(out)
    return out


def _status(field: str) -> int:
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return 0


def _reset_peak() -> None:
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
            fh.write("5")  # resets VmHWM to the current RSS (Linux ≥ 4.0)
    except OSError:
        pass


def _recall(rows: np.ndarray, truth: np.ndarray) -> float:
    k = truth.shape[1]
    hits = [len(np.intersect1d(a[a >= 0], b, assume_unique=False)) for a, b in zip(rows, truth, strict=True)]
    return float(np.mean(hits) / k)


def _timed(fn: Any) -> tuple[float, Any]:
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def _measure(kind: str, docs: np.ndarray, queries: np.ndarray, truth: np.ndarray, k: int, repeats: int,
             rescore: int, workdir: Path, threads: int = 0) -> dict[str, Any]:
    """One kind, in the current (spawned) process."""
    import faiss

    if threads > 0:
        faiss.omp_set_num_threads(threads)

    from bench.index import ArrayStore, FaissIndex, FlatIndex, IndexSpec, MappedStore, open_index

    token = f"scale-{workdir.parent.name}"  # the run's own index cache keys: built cold, removed at its end
    _reset_peak()
    base = _status("VmRSS")
    qn = queries.copy()
    faiss.normalize_L2(qn)
    res: dict[str, Any] = {"kind": kind + (f"+rescore{rescore}" if rescore else "")}
    t0 = time.perf_counter()
    if kind in ("flat", "flat-mmap"):
        if kind == "flat":
            store: Any = ArrayStore(docs, key="scale", normalised=True)
        else:
            folder = workdir / "shards"
            folder.mkdir(parents=True, exist_ok=True)
            paths = []
            for i, a in enumerate(range(0, len(docs), SHARD)):
                p = folder / f"shard-{i:05d}.npy"
                np.save(p, docs[a : a + SHARD])
                paths.append(p)
            res["write_shards_s"] = time.perf_counter() - t0
            store = MappedStore(paths, key="scale-mmap")
        index: Any = FlatIndex(store, "cpu")
        res.update(factory="Flat", index_bytes=store.nbytes, params={})

        def bare() -> tuple[np.ndarray, np.ndarray]:
            return faiss.knn(qn, docs, k, metric=faiss.METRIC_INNER_PRODUCT)
    else:
        spec = IndexSpec(kind, rescore=rescore)
        index = open_index(spec, ArrayStore(docs, key=token, normalised=True), "cpu")
        assert isinstance(index, FaissIndex)
        res.update(factory=index.factory, index_bytes=index.path.stat().st_size if index.path else None,
                   params=index.params, train_rows=index.train_rows, loaded_from_cache=index.build_seconds is None)
        raw = index.cpu_index

        def bare() -> tuple[np.ndarray, np.ndarray]:
            space = faiss.ParameterSpace()
            for name, value in index.params.items():
                space.set_index_parameter(raw, name, value)
            return raw.search(qn, max(k, rescore) if rescore else k)
    res["build_s"] = time.perf_counter() - t0
    t_bare, t_harness = [], []
    out_bare = out_harness = None
    for rep in range(repeats):
        sides = ("bare", "harness") if rep % 2 == 0 else ("harness", "bare")
        for side in sides:
            if side == "bare":
                t, out_bare = _timed(bare)
                t_bare.append(t)
            else:
                t, out_harness = _timed(lambda: index.search(queries, k))
                t_harness.append(t)
    assert out_bare is not None and out_harness is not None
    res.update(
        bare_search_s=min(t_bare), harness_search_s=min(t_harness), bare_qps=len(queries) / min(t_bare),
        harness_qps=len(queries) / min(t_harness), search_ratio=min(t_bare) / min(t_harness),
        recall_harness=_recall(out_harness[1], truth), recall_bare=_recall(out_bare[1][:, :k], truth),
        peak_bytes=max(0, _status("VmHWM") - base), ntotal=int(index.ntotal),
    )
    if kind in ("flat", "flat-mmap"):
        res["same_rows_as_bare"] = float(np.mean(out_harness[1] == out_bare[1]))
    if isinstance(index, FaissIndex) and index.path is not None:
        res["index_path"] = str(index.path)
    return res


def _child(conn: Any, kind: str, data: Path, truth: np.ndarray, k: int, repeats: int, rescore: int, workdir: Path,
           threads: int) -> None:
    """A fresh (spawned) process reads the data the parent wrote: forking after FAISS's OpenMP threads ran can hang."""
    try:
        docs = np.load(data / "docs.npy")
        queries = np.load(data / "queries.npy")
        conn.send(_measure(kind, docs, queries, truth, k, repeats, rescore, workdir, threads))
    except BaseException as exc:  # report, don't hang the parent
        conn.send({"error": f"{type(exc).__name__}: {exc}"})
    finally:
        conn.close()


def _burn(stop: Any) -> None:
    """A load generator: one core busy until `stop` is set."""
    x = 0
    while not stop.is_set():
        for _ in range(100_000):
            x += 1


def run_scale(rows: int, dim: int, queries: int, k: int, kinds: list[str], rescore: int, repeats: int,
              output: Path | None, console: Console, seed: int = 0, threads: int = 0, load: int = 0) -> dict[str, Any]:
    """Measure every kind (see the module docstring); `threads` > 0 sets FAISS's OpenMP threads on both sides
    (on a CPU shared with other jobs one thread avoids spinning barriers: k-means was 15× slower with 2); `load`
    busy processes run beside the measurements."""
    import faiss

    if threads > 0:
        faiss.omp_set_num_threads(threads)

    load_avg = os.getloadavg()
    console = Console(width=max(console.width, 180), stderr=console.stderr)  # the tables are wide
    console.print(f"generating {rows:,} × {dim} unit vectors (1,000 centres + 32-dim latent, seed {seed}) and "
                  f"{queries:,} queries; load average {load_avg[0]:.2f} {load_avg[1]:.2f} {load_avg[2]:.2f}, "
                  f"{os.cpu_count()} CPUs, FAISS {faiss.__version__} with {faiss.omp_get_max_threads()} threads")
    t = time.perf_counter()
    docs = generate(rows, dim, seed)
    q = generate(queries, dim, seed, sample=1)
    console.print(f"[dim]generated in {time.perf_counter() - t:.1f} s; exact ground truth (bare faiss.knn) …[/]")
    t = time.perf_counter()
    _, truth = faiss.knn(q, docs, k, metric=faiss.METRIC_INNER_PRODUCT)
    t_truth = time.perf_counter() - t
    work = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    np.save(work / "docs.npy", docs)  # each kind's process reads them (regenerating costs minutes at 1M)
    np.save(work / "queries.npy", q)
    del docs, q
    console.print(f"[dim]ground truth in {t_truth:.2f} s ({2 * queries * rows * dim / t_truth / 1e9:.0f} GFLOP/s)[/]")
    plan = [(kind, 0) for kind in kinds]
    if rescore and "ivfpq" in kinds:
        plan.append(("ivfpq", rescore))
    results: list[dict[str, Any]] = []
    ctx = mp.get_context("spawn")
    stop_load = ctx.Event()
    burners = [ctx.Process(target=_burn, args=(stop_load,), daemon=True) for _ in range(load)]
    for b in burners:
        b.start()
    if burners:
        console.print(f"[dim]{load} load process(es) burning a core each[/]")
    try:
        for kind, rs in plan:
            console.print(f"[bold]{escape(kind)}{f' + rescore {rs}' if rs else ''}[/] …")
            parent, child = ctx.Pipe(duplex=False)
            proc = ctx.Process(target=_child, args=(child, kind, work, truth, k, repeats, rs, work / kind, threads))
            proc.start()
            child.close()
            try:
                res = parent.recv()
            except EOFError:
                res = {"error": f"the measuring process died (exit code {proc.exitcode})"}
            proc.join()
            if "error" in res:
                console.print(f"[red]{escape(kind)}: {escape(str(res['error']))}[/]")
                continue
            results.append(res)
            if output:  # after every kind, so a long run that is stopped keeps what it measured
                with atomic_open(output) as fh:
                    json.dump({"rows": rows, "dim": dim, "queries": queries, "k": k, "load_before": load_avg,
                               "truth_s": t_truth, "results": results, "partial": True}, fh, indent=1, default=str)
            console.print(f"[dim]{json.dumps({k_: v for k_, v in res.items() if k_ != 'params'})}[/]",
                          highlight=False)
    finally:
        stop_load.set()
        for b in burners:
            b.join()
        shutil.rmtree(work, ignore_errors=True)
        for path in {r["index_path"] for r in results if r.get("index_path")}:  # this run's cold-built indexes
            remove_entry(path)
    load_after = os.getloadavg()

    table = Table(title=f"bench perf --scale — {rows:,} × {dim}, {queries:,} queries, top {k}, CPU")
    for col in ("index", "factory / params", "build (s)", "harness q/s", "bare q/s", "ratio", f"recall@{k}",
                f"bare recall@{k}", "index MiB", "peak MiB"):
        table.add_column(col, justify="left" if col in ("index", "factory / params") else "right")
    for r in results:
        params = ",".join(f"{a}={b}" for a, b in r["params"].items())
        table.add_row(r["kind"], r["factory"] + (f" ({params})" if params else ""), f"{r['build_s']:.1f}",
                      f"{r['harness_qps']:.0f}", f"{r['bare_qps']:.0f}", f"{r['search_ratio']:.3f}×",
                      f"{r['recall_harness']:.4f}", f"{r['recall_bare']:.4f}",
                      f"{(r['index_bytes'] or 0) / 2**20:.0f}", f"{r['peak_bytes'] / 2**20:.0f}")
    console.print(table)

    extrapolation = extrapolate(results, rows, dim)
    ext = Table(title=f"extrapolated to {TARGET_ROWS:,} × {TARGET_DIM} (index bytes per vector × rows; "
                      f"{MACHINE_GIB} GiB machine)")
    for col in ("index", "bytes/vector", "GiB", f"fits {MACHINE_GIB} GiB", f"recall@{k} measured here"):
        ext.add_column(col, justify="left" if col == "index" else "right")
    for e in extrapolation:
        ext.add_row(e["kind"], f"{e['bytes_per_vector']:.0f}", f"{e['gib']:.1f}", "yes" if e["fits"] else "no",
                    f"{e['recall']:.4f}")
    console.print(ext)
    console.print(f"load average before {load_avg[0]:.2f}, after {load_after[0]:.2f} (shared CPU: read ratios, not "
                  f"absolute speeds)")
    figures = {"rows": rows, "dim": dim, "queries": queries, "k": k, "seed": seed, "load_before": load_avg,
               "load_processes": load,
               "faiss_threads": faiss.omp_get_max_threads(), "repeats": repeats,
               "load_after": load_after, "faiss": faiss.__version__, "truth_s": t_truth, "results": results,
               "extrapolation": extrapolation}
    if output:
        with atomic_open(output) as fh:
            json.dump(figures, fh, indent=1, default=str)
        console.print(f"[dim]figures written to {escape(str(output))}[/]", highlight=False)
    return figures


def extrapolate(results: list[dict[str, Any]], rows: int, dim: int) -> list[dict[str, Any]]:
    """Memory of each kind at 25M × 1,536: flat / HNSW / IVF-Flat bytes grow with the dimension (4 bytes each plus the
    measured per-vector overhead), IVF-PQ keeps d/8 bytes per vector (the same bits per dimension) plus its ids."""
    out = []
    for r in results:
        if not r.get("index_bytes"):
            continue
        per = r["index_bytes"] / rows
        if r["kind"].startswith("ivfpq"):
            target = per - dim / 8 + TARGET_DIM / 8
        else:
            target = per - 4 * dim + 4 * TARGET_DIM
        if r["kind"] == "flat-mmap":
            from bench.index.flat import _SCAN_BYTES

            resident = 2 * max(SHARD * TARGET_DIM * 4, _SCAN_BYTES)  # a group searched, the next one read
            gib = target * TARGET_ROWS / 2**30
            out.append({"kind": "flat-mmap (on disk)", "bytes_per_vector": target, "gib": gib,
                        "resident_gib": resident / 2**30, "fits": True, "recall": r["recall_harness"]})
            continue
        gib = target * TARGET_ROWS / 2**30
        out.append({"kind": r["kind"], "bytes_per_vector": target, "gib": gib, "fits": gib < MACHINE_GIB * 0.9,
                    "recall": r["recall_harness"]})
    return out
