"""One placement (bench/device.py): resolution, LOCAL_RANK, and `--device` reaching the objects retrievers build."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import bench.device as dev
from bench.cli import main
from bench.data.task import build_task
from bench.device import combine, resolve
from bench.errors import BenchError
from bench.storage.cache import cache_root
from bench.systems.retriever import build_retriever
from bench.systems.session import Session


def test_cpu_only_machine() -> None:
    p = resolve("auto", "auto", env={}, n_gpus=0)
    assert (p.device, p.gpus, p.precision, p.torch_device) == ("cpu", (), "float32", "cpu")
    assert resolve("cpu", "fp32", env={}, n_gpus=3).torch_device == "cpu"
    with pytest.raises(BenchError, match="torch sees no CUDA GPU"):
        resolve("cuda", env={}, n_gpus=0)
    with pytest.raises(BenchError, match="precision float16 needs a GPU"):
        resolve("cpu", "fp16", env={}, n_gpus=0)
    with pytest.raises(BenchError, match="device must be auto, cpu, cuda or cuda:N"):
        resolve("tpu", env={}, n_gpus=0)
    with pytest.raises(BenchError, match="precision/dtype must be"):
        resolve("cpu", "int4", env={}, n_gpus=0)


def test_gpu_vocabulary(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dev, "bf16_supported", lambda: True)
    every = resolve("cuda", "auto", env={}, n_gpus=3)
    assert every.gpus == (0, 1, 2) and every.torch_device == "cuda:0" and every.precision == "bfloat16"
    assert every.amp == "bf16"
    assert resolve("auto", "half", env={}, n_gpus=2).precision == "float16"
    one = resolve("cuda:1", "auto", env={}, n_gpus=2)
    assert one.gpus == (1,) and one.torch_device == "cuda:1"
    with pytest.raises(BenchError, match="cuda:2 asked for, but torch sees 2"):
        resolve("cuda:2", env={}, n_gpus=2)
    monkeypatch.setattr(dev, "bf16_supported", lambda: False)
    assert resolve("cuda", env={}, n_gpus=1).precision == "float16"


def test_local_rank_under_torchrun(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dev, "bf16_supported", lambda: True)
    p = resolve("auto", env={"LOCAL_RANK": "2"}, n_gpus=4)
    assert p.gpus == (2,) and p.torch_device == "cuda:2" and p.local_rank == 2
    assert resolve("cuda", env={"LOCAL_RANK": "1"}, n_gpus=4).torch_device == "cuda:1"
    assert resolve("cuda:3", env={"LOCAL_RANK": "1"}, n_gpus=4).torch_device == "cuda:3"  # explicit wins
    assert resolve("auto", env={"LOCAL_RANK": "0"}, n_gpus=0).device == "cpu"
    with pytest.raises(BenchError, match="LOCAL_RANK=5, but torch sees only 4"):
        resolve("auto", env={"LOCAL_RANK": "5"}, n_gpus=4)
    with pytest.raises(BenchError, match="LOCAL_RANK must be an integer"):
        resolve("auto", env={"LOCAL_RANK": "x"}, n_gpus=4)


def test_a_stage_parameter_wins_over_the_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dev, "cuda_count", lambda: 2)
    monkeypatch.setattr(dev, "bf16_supported", lambda: True)
    run = resolve("cuda:1", source="cli", env={})
    assert combine("auto", "auto", run) is run
    assert combine("cpu", "auto", run).torch_device == "cpu"
    assert combine("auto", "float32", run).torch_device == "cuda:1"
    assert combine("auto", "float32", run).precision == "float32"
    assert combine("auto", "auto", None).torch_device == "cuda:0"


@pytest.fixture
def cuda_present(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pretend torch sees one GPU, so that `auto` would mean CUDA: what `--device cpu` must override."""
    monkeypatch.setattr(dev, "cuda_count", lambda: 1)
    monkeypatch.setattr(dev, "bf16_supported", lambda: True)


def test_device_cpu_reaches_the_dense_model(cuda_present: None) -> None:
    data = build_task("limit-small").load()
    retriever = build_retriever("minilm")
    assert retriever.dense.placement.torch_device == "cuda:0"  # unplaced, `auto` would take the GPU
    retriever = build_retriever("minilm")
    emb, index, _ = Session(device="cpu").corpus_index(data, retriever)
    model = retriever.dense.model()
    assert retriever.dense.device == "cpu" and retriever.dense.dtype == "float32"
    assert next(model.parameters()).device.type == "cpu" and model.device.type == "cpu"
    assert retriever.info()["placement"]["source"] == "cli"
    assert index.describe()["device"] == "cpu" and emb.ntotal == 46


def test_retriever_parameter_overrides_cli_device(cuda_present: None) -> None:
    retriever = build_retriever("minilm", {"device": "cpu"})
    retriever.place(resolve("cuda", source="cli"))
    assert retriever.dense.device == "cpu" and retriever.dense.placement.source == "parameter"
    other = build_retriever("minilm")
    other.place(resolve("cuda", source="cli"))
    assert other.dense.device == "cuda:0" and other.dense.dtype == "bfloat16"  # not loaded: no GPU here


def test_device_cpu_reaches_the_mteb_model(cuda_present: None) -> None:
    pytest.importorskip("mteb", reason="mteb is in the dev extra")
    from retrievers.dense import minilm_path

    retriever = build_retriever("mteb:sentence-transformers/all-MiniLM-L6-v2", {"model_path": minilm_path()})
    assert retriever.device == "cuda:0"
    retriever = build_retriever("mteb:sentence-transformers/all-MiniLM-L6-v2", {"model_path": minilm_path()})
    retriever.place(resolve("cpu", source="cli"))
    assert retriever.device == "cpu" and retriever.info()["device"] == "cpu"


def test_pool_devices_follow_the_placement(cuda_present: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dev, "cuda_count", lambda: 3)
    r = build_retriever("minilm")
    r.place(resolve("cuda", "float16", source="cli"))
    assert r.dense.pool_devices() == ["cuda:0", "cuda:1", "cuda:2"]  # one encoding process per GPU
    r = build_retriever("minilm", {"processes": 2})
    r.place(resolve("cpu"))
    assert r.dense.pool_devices() == ["cpu", "cpu"]
    r = build_retriever("minilm")
    r.place(resolve("cuda:1", "float16"))
    assert r.dense.pool_devices() == []


@pytest.mark.slow
def test_multi_process_pool_encodes_like_one_process() -> None:
    one = build_retriever("minilm", {"device": "cpu"})
    two = build_retriever("minilm", {"device": "cpu", "processes": 2})
    texts = [f"passage number {i} about quokkas" for i in range(40)]
    a = one.dense.encode(texts, "", pool=True)
    b = two.dense.encode(texts, "", pool=True)
    np.testing.assert_allclose(a, b, atol=1e-5)


def test_embeddings_exist_once_on_disk_after_a_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path / "cache"))
    code = main(["run", "--retriever", "minilm", "--task", "limit-small", "--device", "cpu",
                 "--results-dir", str(tmp_path / "r")])
    assert code == 0
    root = cache_root()
    shards = sorted((root / "embeddings").rglob("shard-*.npy"))
    assert shards
    one_copy = 46 * 384 * 4
    shard_bytes = sum(p.stat().st_size for p in shards)
    assert one_copy <= shard_bytes <= one_copy + 256 * len(shards)  # float32 rows + .npy headers
    big = [p for p in root.rglob("*") if p.is_file() and p.stat().st_size >= one_copy // 2]
    assert sorted(big) == shards  # nothing else (no .faiss, no .npz) holds the vectors again
    (result,) = sorted((tmp_path / "r").rglob("*.json"))
    info = json.loads(result.read_text())["extra"]["index"]
    assert info["kind"] == "flat" and info["store"] == "MappedStore" and info["device"] == "cpu"
