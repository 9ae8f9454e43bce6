"""`bench run` under `torchrun --nproc-per-node 2` (gloo, CPU) on a small real-text task, against one process: the
corpus embeddings are bit-for-bit the same, each rank wrote about half the shards (their manifests say which rank),
rank 0 writes the one results file and its per-query values are the single process's, and the two ranks together
spend at most 1.3× the CPU time of one process. A rank killed mid-encode stops the other with one line naming it,
and the rerun reuses every shard already written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.support import REPO
from tests.support.published import write_ambigqa
from tests.support.wiki_beir import make_wiki_beir

pytestmark = pytest.mark.slow

N_DOCS, N_QUERIES, SHARD = 800, 60, 32  # 25 shards: encoding (~80 CPU s) outweighs what each extra rank pays
# once (interpreter, torch and model start ~7 CPU s, waits at the gathers), so the ratio measures the distribution
CPU_TIMED = REPO / "tests" / "support" / "cpu_timed.py"


def _env(cache: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "BENCH_CACHE_DIR": str(cache), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
            "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": str(REPO), **extra}


def _run_args(data: Path, results: Path) -> list[str]:
    return ["run", "--task", "beir", "-t", f"data_dir={data}", "--retriever", "minilm", "-r", f"shard_size={SHARD}",
            "--device", "cpu", "--results-dir", str(results)]


def _torchrun(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                           *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)


def _shards(cache: Path) -> list[Path]:
    (folder,) = (cache / "embeddings").iterdir()
    return sorted(folder.glob("shard-*.npy"))


def _runs(results: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(results.rglob("*.json"))]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_wiki_beir(tmp_path_factory.mktemp("wiki-beir"), N_DOCS, N_QUERIES)


def _run_single(data: Path, root: Path) -> dict:
    """`bench run` in one process, from a cold cache under `root`: its cache, results and CPU seconds."""
    done = subprocess.run([sys.executable, str(CPU_TIMED), str(root / "cpu"), *_run_args(data, root / "results")],
                          cwd=REPO, env=_env(root / "cache"), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    return {"cache": root / "cache", "runs": _runs(root / "results"),
            "cpu": json.loads((root / "cpu" / "cpu-0.json").read_text())["cpu_s"]}


def _run_two(data: Path, root: Path) -> dict:
    """The same under `torchrun --nproc-per-node 2`: the CPU seconds are per rank."""
    done = _torchrun([str(CPU_TIMED), str(root / "cpu"), *_run_args(data, root / "results")], _env(root / "cache"))
    assert done.returncode == 0, done.stdout + done.stderr
    cpu = [json.loads((root / "cpu" / f"cpu-{r}.json").read_text())["cpu_s"] for r in range(2)]
    return {"cache": root / "cache", "runs": _runs(root / "results"), "cpu": cpu, "out": done.stdout}


@pytest.fixture(scope="module")
def single(data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    return _run_single(data, tmp_path_factory.mktemp("single"))


@pytest.fixture(scope="module")
def two(data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    return _run_two(data, tmp_path_factory.mktemp("two"))


def test_embeddings_equal_a_single_process_bit_for_bit(single: dict, two: dict) -> None:
    a, b = _shards(single["cache"]), _shards(two["cache"])
    assert [p.name for p in a] == [p.name for p in b] and len(a) == -(-N_DOCS // SHARD)
    for x, y in zip(a, b, strict=True):
        assert x.read_bytes() == y.read_bytes(), x.name


def test_each_rank_wrote_about_half_the_shards(two: dict) -> None:
    writers = [json.loads(Path(f"{p}.manifest.json").read_text())["info"] for p in _shards(two["cache"])]
    assert all(w["world_size"] == 2 for w in writers)
    per_rank = [sum(w["rank"] == r for w in writers) for r in range(2)]
    assert abs(per_rank[0] - per_rank[1]) <= 1 and sum(per_rank) == len(writers)
    assert [w["rank"] for w in writers] == [i % 2 for i in range(len(writers))]  # shard i on rank i mod 2


def test_one_results_file_with_the_single_process_values(single: dict, two: dict) -> None:
    (run,) = two["runs"]
    (ref,) = single["runs"]
    assert run["query_ids"] == ref["query_ids"] and len(run["query_ids"]) == N_QUERIES
    assert run["per_query"] == ref["per_query"]
    assert run["extra"]["distributed"]["processes"] == 2
    assert two["out"].count("MRECALL") >= 1 and two["out"].count("minilm: ") == 1  # one table, one path: rank 0


def test_two_ranks_spend_at_most_1_3x_the_cpu_time_of_one(data: Path, single: dict, two: dict,
                                                          tmp_path: Path) -> None:
    """CPU time on two shared cores rises with whatever else runs (cache and memory-bandwidth contention), so each
    side is the best of up to two cold measurements, as a benchmark takes its minimum: a second pair is measured
    only when the first is over the bound."""
    ones, twos = [single["cpu"]], [sum(two["cpu"])]
    if twos[0] > 1.3 * ones[0]:
        ones.append(_run_single(data, tmp_path / "single")["cpu"])
        twos.append(sum(_run_two(data, tmp_path / "two")["cpu"]))
    assert min(twos) <= 1.3 * min(ones), (twos, ones)


@pytest.mark.robustness(case="one rank of `torchrun --nproc-per-node 2 -m bench run` SIGKILLed mid-encode",
                        outcome="the other stops with one `error:` line naming the rank, host, pid and what it was "
                                "doing; the rerun reuses every shard written and equals a single process's run")
def test_a_killed_rank_is_named_and_the_rerun_reuses_its_shards(data: Path, single: dict, tmp_path: Path) -> None:
    cache, results = tmp_path / "cache", tmp_path / "results"
    # rank 1 owns the odd shards: it SIGKILLs itself as it is about to write shard 3 (its second)
    killed = _torchrun(["-m", "bench", *_run_args(data, results)], _env(cache, BENCH_FAULT_KILL="shard-00003.npy"))
    assert killed.returncode != 0
    lines = [line for line in killed.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, killed.stderr
    assert "rank 1 of 2" in lines[0] and "died while encoding the corpus" in lines[0]
    assert not list(results.rglob("*.json"))
    kept = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in _shards(cache)}
    assert "shard-00001.npy" in kept and "shard-00003.npy" not in kept
    rerun = _torchrun(["-m", "bench", *_run_args(data, results)], _env(cache))
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    for p in _shards(cache):
        if p.name in kept:  # written before the kill: reused, not encoded again
            assert (p.stat().st_ino, p.stat().st_mtime_ns) == kept[p.name]
    assert len(_shards(cache)) == -(-N_DOCS // SHARD)
    (run,) = _runs(results)
    assert run["per_query"] == single["runs"][0]["per_query"]
    for p in _shards(cache):
        assert np.array_equal(np.load(p), np.load(single["cache"] / "embeddings" / p.parent.name / p.name))


def test_data_prepare_shares_the_dense_encoding_out(tmp_path: Path) -> None:
    """`torchrun ... bench data prepare`: both ranks encode the corpus for the dense candidates, rank 0 maps; the
    prepared task is the one a single process prepares."""
    write_ambigqa(tmp_path)
    args = ["data", "prepare", "--task", "ambigqa", "--data-dir", str(tmp_path / "ambignq"), "--corpus",
            str(tmp_path / "psgs_w100.tsv"), "-t", "dense=minilm[shard_size=16]"]
    done = _torchrun(["-m", "bench", *args], _env(tmp_path / "cache"))
    assert done.returncode == 0, done.stdout + done.stderr
    writers = [json.loads(Path(f"{p}.manifest.json").read_text())["info"]["rank"] for p in _shards(tmp_path / "cache")]
    assert len(writers) == 8 and sorted(set(writers)) == [0, 1]
    assert done.stdout.count("prepared:") == 1  # rank 0 prints
    (folder,) = _entries(tmp_path / "cache" / "tasks" / "ambigqa")
    single = subprocess.run([sys.executable, "-m", "bench", *args], cwd=REPO, env=_env(tmp_path / "cache1"),
                            capture_output=True, text=True, timeout=600)
    assert single.returncode == 0, single.stdout + single.stderr
    (ref,) = _entries(tmp_path / "cache1" / "tasks" / "ambigqa")
    assert folder.name == ref.name
    for name in ("queries.jsonl", "qrels/train.tsv", "qrels/test.tsv"):
        assert (folder / name).read_text() == (ref / name).read_text()


def _entries(folder: Path) -> list[Path]:
    """The entry folders of a cache folder: not their manifests nor the `.locks` folder (bench/storage/cache.py)."""
    return [p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")]
