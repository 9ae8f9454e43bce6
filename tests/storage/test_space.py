"""Disk space (bench/storage/space.py): a write that fails for want of space, however the writer says so, is one
BenchError naming the folder, the file and the space it needs, raised after the temp file is gone
(bench/storage/atomic.py); the preflight checks name their margin (bench/storage/preflight.py)."""

from __future__ import annotations

import errno
from pathlib import Path

import numpy as np
import pytest

from bench.errors import BenchError
from bench.storage.atomic import atomic_dir, atomic_path
from bench.storage.cache import write_entry
from bench.storage.preflight import MARGIN, check_free_space, planned_results_bytes
from bench.storage.space import DiskFull, disk_full, human_bytes, is_disk_full, nbytes_of


def _raiser(exc: BaseException):  # type: ignore[no-untyped-def]
    def build(tmp: Path) -> None:
        tmp.write_bytes(b"x" * 1000)  # a partial file, as a writer leaves it when the disk fills
        raise exc

    return build


@pytest.mark.parametrize("exc", [OSError(errno.ENOSPC, "No space left on device"),
                                 OSError(errno.EDQUOT, "Disk quota exceeded")])
def test_enospc_becomes_one_line_naming_folder_file_and_space(tmp_path: Path, exc: OSError) -> None:
    target = tmp_path / "sub" / "entry.npy"
    with pytest.raises(DiskFull) as info:
        write_entry(target, _raiser(exc), need=5 << 20)
    message = str(info.value)
    assert message.startswith(f"no space left on the disk holding {tmp_path / 'sub'}: writing entry.npy needs about "
                               "5.0 MB, ")
    assert "\n" not in message and "Errno" not in message
    assert isinstance(info.value, BenchError) and isinstance(info.value, OSError) and info.value.errno == errno.ENOSPC
    assert [p.name for p in (tmp_path / "sub").iterdir() if not p.name.startswith(".locks")] == []  # nothing partial


def test_a_writer_error_on_a_full_disk_is_disk_full(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """torch.save says `RuntimeError: basic_ios::clear: iostream error`, FAISS and safetensors their own words: on a
    disk with (nearly) nothing free any failed write is a full disk; with room left it is the writer's own error."""
    import bench.storage.space as space

    error = RuntimeError("basic_ios::clear: iostream error")
    monkeypatch.setattr(space, "free_bytes", lambda path: 4096)
    with pytest.raises(DiskFull, match="writing state.pt needs more than the 1000 B written before the disk filled"):
        with atomic_path(tmp_path / "state.pt") as tmp:
            _raiser(error)(tmp)
    with pytest.raises(DiskFull):
        with atomic_dir(tmp_path / "folder") as tmp:
            _raiser(error)(tmp / "f")
    monkeypatch.setattr(space, "free_bytes", lambda path: 10 << 30)
    with pytest.raises(RuntimeError, match="basic_ios"):
        with atomic_path(tmp_path / "state.pt") as tmp:
            _raiser(error)(tmp)
    assert not is_disk_full(BenchError("a writer's own error"), tmp_path)
    assert not is_disk_full(KeyboardInterrupt(), tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_disk_full_message_without_an_estimate(tmp_path: Path) -> None:
    assert "writing x.json needs more space than is left" in str(disk_full(tmp_path / "x.json", None))


def test_nbytes_of_nested_arrays() -> None:
    import torch

    state = {"a": np.zeros(10, np.float32), "b": [torch.zeros(4, dtype=torch.float64), {"c": 3}], "d": "text"}
    assert nbytes_of(state) == 40 + 32


def test_free_space_check_names_the_margin(tmp_path: Path) -> None:
    with pytest.raises(BenchError) as info:
        check_free_space(tmp_path, 1 << 50, "the cache")
    message = str(info.value)
    assert message.startswith(f"the cache: needs about 1024.0 TB on {tmp_path}, plus the margin of 64 MiB a run keeps "
                              "free (")
    assert MARGIN == 64 << 20 and human_bytes(MARGIN) == "64.0 MB"


def test_planned_results_bytes_grows_with_queries_depth_and_systems() -> None:
    one = planned_results_bytes(1000, 100, 4)
    assert one > 1000 * 100 * 48  # a TREC line per query and rank
    assert planned_results_bytes(1000, 100, 4, n_systems=3) == 3 * one
    assert planned_results_bytes(2000, 100, 4) > one
