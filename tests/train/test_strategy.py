"""DDP on CPU (2 processes, gloo, launched by torchrun): gathered in-batch negatives give the single-process loss of
the same global batch, and every rank ends with the same weights as each other and as single-process training."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from tests.support import (
    REPO,
    ddp_worker,  # noqa: E402
)


def _torchrun(*args: str, env: dict[str, str] | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                           *args], cwd=REPO, env=full_env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def ranks(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    out = tmp_path_factory.mktemp("ddp")
    done = _torchrun(str(REPO / "tests" / "support" / "ddp_worker.py"), str(out))
    assert done.returncode == 0, done.stdout + done.stderr
    return [torch.load(out / f"rank{r}.pt", weights_only=False) for r in range(2)]


@pytest.mark.slow
def test_gathered_negatives_loss_equals_the_single_process_loss(ranks: list[dict]) -> None:
    for r in ranks:
        assert r["world_size"] == 2
        for objective in ("matched", "rand1"):
            assert r["losses"][f"{objective}_gathered"] == pytest.approx(r["losses"][f"{objective}_single"],
                                                                         rel=1e-6)


@pytest.mark.slow
def test_the_gather_keeps_the_gradient_of_the_local_part(ranks: list[dict]) -> None:
    w = torch.arange(12.0).reshape(4, 3)
    for r, rank in enumerate(ranks):
        assert torch.equal(rank["gathered"], torch.cat([torch.full((2, 3), 1.0), torch.full((2, 3), 2.0)]))
        assert rank["offset"] == 2 * r
        assert torch.equal(rank["grad"], w[2 * r : 2 * r + 2] * (1 + 2))  # both ranks' losses use this part


@pytest.mark.slow
def test_both_ranks_end_with_identical_weights_equal_to_single_process_training(ranks: list[dict]) -> None:
    a, b = ranks[0]["weights"], ranks[1]["weights"]
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert ranks[0]["best_step"] == ranks[1]["best_step"]
    torch.set_num_threads(1)
    single = ddp_worker.trainer(None)
    single.run()
    ref = single.model.state_dict()
    for k in a:
        torch.testing.assert_close(a[k], ref[k], atol=2e-4, rtol=1e-3)


@pytest.mark.slow
def test_torchrun_bench_train_is_the_same_entry_point(tmp_path: Path) -> None:
    """`torchrun --nproc-per-node 2 -m bench train ...`: one checkpoint, written by rank 0, one table printed."""
    done = _torchrun("-m", "bench", "train", "--retriever", "amer", "--task", "synthetic-linear-single",
                     "--device", "cpu", "-t", "d=16", "-t", "n_train=100", "-t", "n_test=10", "-t", "n_negatives=100",
                     "-r", "width=32", "-r", "layers=1", "-r", "heads=2", "-r", "batch_size=16", "-r", "steps=6",
                     "-r", "eval_every=3", env={"BENCH_CACHE_DIR": str(tmp_path)})
    assert done.returncode == 0, done.stdout + done.stderr
    (ckpt,) = (tmp_path / "checkpoints").glob("amer-*.safetensors")
    from bench.train.checkpoint import load_checkpoint

    assert load_checkpoint(ckpt).meta["train"]["processes"] == 2
    assert done.stdout.count("best validation loss") == 1
