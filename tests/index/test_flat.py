"""The flat index's reader thread (bench/index/flat.py `_prefetched`): same blocks in the same order, errors raised
in the caller, the reader released when the caller stops early, and the next block read while this one is used.
(The search results themselves, ties included, are checked against one flat search in tests/index/test_index.py.)"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest

from bench.index.flat import _prefetched


def _blocks(n: int, log: list[str] | None = None) -> Iterator[tuple[int, np.ndarray]]:
    for i in range(n):
        if log is not None:
            log.append(f"read {i}")
        yield i * 4, np.full((4, 3), i, dtype=np.float32)


def test_blocks_come_in_order_and_unchanged() -> None:
    got = list(_prefetched(_blocks(7)))
    expect = list(_blocks(7))
    assert [s for s, _ in got] == [s for s, _ in expect]
    assert all(np.array_equal(a, b) for (_, a), (_, b) in zip(got, expect, strict=True))
    assert list(_prefetched(_blocks(0))) == []


def test_a_reader_error_is_raised_in_the_caller() -> None:
    def failing() -> Iterator[tuple[int, np.ndarray]]:
        yield 0, np.zeros((1, 1), dtype=np.float32)
        raise OSError("shard-00001.npy: unreadable")

    it = _prefetched(failing())
    assert next(it)[0] == 0
    with pytest.raises(OSError, match="unreadable"):
        next(it)


def test_stopping_early_releases_the_reader() -> None:
    before = threading.active_count()
    it = _prefetched(_blocks(100))
    next(it)
    it.close()  # what a `for` loop left by an exception does
    assert threading.active_count() == before


def test_the_next_block_is_read_while_this_one_is_used() -> None:
    log: list[str] = []
    it = _prefetched(_blocks(3, log))
    next(it)
    log.append("searching 0")
    deadline = time.monotonic() + 5
    while "read 1" not in log and time.monotonic() < deadline:
        time.sleep(0.01)
    assert "read 1" in log  # read by the thread before the caller asked for it
    assert [s for s, _ in it] == [4, 8]
