"""Resumable training: a `bench train` killed with SIGKILL resumes from its last training state and ends with
exactly the weights of an uninterrupted run with the same seed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from bench.train.checkpoint import load_checkpoint
from tests.support import REPO

ARGS = ["train", "--retriever", "amer", "--task", "synthetic-linear-single", "--device", "cpu", "--seed", "5",
        "-t", "d=16", "-t", "n_train=200", "-t", "n_test=20", "-t", "n_negatives=300",
        "-r", "width=32", "-r", "layers=1", "-r", "heads=2", "-r", "batch_size=32", "-r", "steps=400",
        "-r", "eval_every=25", "-r", "checkpoint_every=20", "-r", "lr=3e-3"]


def _bench(cache: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "BENCH_CACHE_DIR": str(cache), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "bench", *ARGS, *extra], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _weights(cache: Path) -> dict[str, torch.Tensor]:
    (ckpt,) = (cache / "checkpoints").glob("amer-*.safetensors")
    return load_checkpoint(ckpt).state_dict


@pytest.mark.slow
def test_killed_training_resumes_to_the_uninterrupted_weights(tmp_path: Path) -> None:
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    ref = _bench(whole)
    victim = _bench(killed)
    states = killed / "checkpoints"
    deadline = time.monotonic() + 240
    while not list(states.glob("*.train-state.pt")):
        assert victim.poll() is None, f"training ended before a state was saved:\n{victim.communicate()[0]}"
        assert time.monotonic() < deadline, "no training state appeared"
        time.sleep(0.02)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert victim.returncode == -signal.SIGKILL
    assert not list(states.glob("amer-*.safetensors")), "the run finished before it was killed"
    out, _ = ref.communicate(timeout=300)
    assert ref.returncode == 0, out
    resumed = _bench(killed)
    out, _ = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, out
    assert "resuming training from step" in out, out
    step = int(out.split("resuming training from step ")[1].split()[0])
    assert 20 <= step < 400 and step % 20 == 0
    a, b = _weights(whole), _weights(killed)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not list(states.glob("*.train-state.pt"))  # the state is removed once training completes
    (ckpt,) = states.glob("amer-*.safetensors")
    assert load_checkpoint(ckpt).meta["train"]["resumed_from_step"] == step
