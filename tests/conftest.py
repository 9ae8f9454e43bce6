"""Shared test setup: an isolated cache per test session, one torch thread (2 shared cores), real data paths.

`make test` runs the suite on every core with pytest-xdist: each worker is a session of its own (its own empty
cache, one compute thread), and only the converted offline LLM folder — an immutable cache entry, built under its
file lock — is shared between the workers of one run, so it is converted once."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support import SHARED_DATA


def pytest_configure(config: pytest.Config) -> None:
    """With xdist workers (`-n`), one compute thread per worker process and per process it starts: two workers on two
    cores, each with OpenMP / BLAS threads of its own, would spin-wait against each other."""
    if getattr(config.option, "numprocesses", None):
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ.setdefault(var, "1")


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory):
    """Every test session gets its own empty cache, so tests never read a developer's cache or each other's."""
    old = os.environ.get("BENCH_CACHE_DIR")
    root = tmp_path_factory.mktemp("bench-cache")
    if os.environ.get("PYTEST_XDIST_WORKER"):  # the workers of one run share the converted LLM folder (see above)
        shared = tmp_path_factory.getbasetemp().parent / "shared-models"
        shared.mkdir(exist_ok=True)
        (root / "models").symlink_to(shared, target_is_directory=True)
    os.environ["BENCH_CACHE_DIR"] = str(root)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass
    yield
    if old is None:
        os.environ.pop("BENCH_CACHE_DIR", None)
    else:
        os.environ["BENCH_CACHE_DIR"] = old


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.fail(f"real data folder {SHARED_DATA} is missing: clone the project with ../shared beside it")
    return SHARED_DATA


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A cache of this test's own (BENCH_CACHE_DIR → tmp_path/cache), for tests that inspect or damage its files."""
    root = tmp_path / "cache"
    monkeypatch.setenv("BENCH_CACHE_DIR", str(root))
    return root
