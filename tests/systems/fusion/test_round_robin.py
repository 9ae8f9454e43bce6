"""Round-robin merge with de-duplication."""

from __future__ import annotations

import numpy as np
import pytest

from bench.errors import BenchError
from bench.systems.fusion.round_robin import round_robin_merge


def test_interleaves_and_drops_duplicates() -> None:
    lists = np.array([[[1, 2, 3], [2, 4, 5]]])
    # 1, 2 | 2(dup), 4 | 3, 5
    assert round_robin_merge(lists, 5).tolist() == [[1, 2, 4, 3, 5]]
    assert round_robin_merge(lists, 3).tolist() == [[1, 2, 4]]


def test_short_lists_pad_with_minus_one() -> None:
    lists = np.array([[[1, -1, -1], [1, 2, -1]]])
    assert round_robin_merge(lists, 4).tolist() == [[1, 2, -1, -1]]


def test_single_list_is_itself() -> None:
    lists = np.array([[[9, 8, 7]], [[3, 2, 1]]])
    assert round_robin_merge(lists, 2).tolist() == [[9, 8], [3, 2]]


def test_three_lists_order() -> None:
    lists = np.array([[[10, 11], [20, 21], [30, 10]]])
    # 10, 20, 30 | 11, 21, 10(dup)
    assert round_robin_merge(lists, 6).tolist() == [[10, 20, 30, 11, 21, -1]]


def test_matches_a_plain_loop() -> None:
    rng = np.random.default_rng(1)
    lists = rng.integers(0, 30, size=(50, 4, 12))
    merged = round_robin_merge(lists, 25)
    for q in range(50):
        seen: list[int] = []
        for rank in range(12):
            for li in range(4):
                d = int(lists[q, li, rank])
                if d not in seen:
                    seen.append(d)
        expected = (seen + [-1] * 25)[:25]
        assert merged[q].tolist() == expected


def test_bad_shapes() -> None:
    with pytest.raises(BenchError):
        round_robin_merge(np.zeros((2, 3)), 2)
    with pytest.raises(BenchError):
        round_robin_merge(np.zeros((1, 2, 3)), 0)
