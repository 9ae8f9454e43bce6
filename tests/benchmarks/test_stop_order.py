"""benchmarks/stop_order.py: the answer order per count, and whether it is nested (hand-made vectors)."""

from __future__ import annotations

import importlib.util
from types import ModuleType

import numpy as np

from tests.support import REPO


def _load() -> ModuleType:
    path = REPO / "benchmarks" / "stop_order.py"
    spec = importlib.util.spec_from_file_location("stop_order", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


stop_order = _load()


def test_nearest_answers_names_each_position_or_none() -> None:
    answers = np.eye(3, dtype=np.float32)  # T1, T2, T3 along the axes
    half = np.sqrt(0.5)
    vecs = np.array([[0, 1, 0], [half, 0, half], [1, 0, 0], [0, 0, -1]], dtype=np.float32)
    # position 2 lies between T1 and T3 (cosine 0.71 with each): below 0.8 it names none, at 0.7 the first
    assert stop_order.nearest_answers(vecs, answers, 0.8) == (1, -1, 0, -1)
    assert stop_order.nearest_answers(vecs, answers, 0.7) == (1, 0, 0, -1)


def test_nested_orders() -> None:
    # (T2, T1) then (T2, T1, T3, …): positions 1..c hold the c answers, the same for every c
    nested = {2: (1, 0, -1, -1, -1), 3: (1, 0, 2, -1, -1), 5: (1, 0, 2, 3, 4)}
    assert stop_order.is_nested(nested)
    # (T2, T1) for two answers but (T2, T3, T1) for three: position 2 changes with the count
    assert not stop_order.is_nested({2: (1, 0, -1, -1, -1), 3: (1, 2, 0, -1, -1)})
    # an answer outside the first c positions is not a prefix order at all
    assert not stop_order.is_nested({2: (1, -1, 0, -1, -1)})
