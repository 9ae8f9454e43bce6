"""The orchestrator's checks on a run (bench/evaluate.py): a run whose every query scored its documents alike is
flagged; a negative seed from the Python API is refused before any work."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bench.errors import BenchError
from bench.evaluate import all_scores_tied, evaluate_named

NEG = -np.inf


@pytest.mark.parametrize(("scores", "tied"), [
    ([[0.5, 0.5, 0.5], [0.1, 0.1, NEG]], True),  # every query ties (padding is not a score)
    ([[0.5, 0.5, 0.5], [0.2, 0.1, NEG]], False),  # one query ranks
    ([[0.5, NEG, NEG], [0.3, NEG, NEG]], False),  # one document each: nothing to tie
    ([[0.5, NEG, NEG], [0.3, 0.3, NEG]], True),
    ([[NEG, NEG], [NEG, NEG]], False),
])
def test_all_scores_tied(scores: list[list[float]], tied: bool) -> None:
    assert all_scores_tied(np.asarray(scores, dtype=np.float32)) is tied


def test_a_negative_seed_is_refused_by_the_api(tmp_path: Path) -> None:
    with pytest.raises(BenchError, match="seed must be ≥ 0, got -1"):
        evaluate_named("synthetic-linear-single", "oracle", (10,), ["d=16", "n_train=30", "n_test=20",
                                                                     "n_negatives=500"], seed=-1,
                       results_dir=tmp_path)
