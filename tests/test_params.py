"""Plugin parameters (bench/params.py): seeds are whole numbers ≥ 0 and floats finite, however they arrive (a
`key=value` string, a typed mapping); a field's `stored` function shapes what results record."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from bench.errors import BenchError
from bench.params import is_seed, params_dict, parse_params


@dataclass(frozen=True)
class P:
    seed: int = 0
    split_seed: int = 0
    lr: float = 1e-3
    url: str | None = field(default=None, metadata={"stored": lambda v: v.upper()})


def test_negative_seeds_are_refused_where_parsed() -> None:
    assert is_seed("seed") and is_seed("split_seed") and not is_seed("seeds_per_query")
    assert parse_params(P, "p", ["seed=3", "split_seed=0"]) == P(seed=3)
    for pairs in (["seed=-1"], ["split_seed=-2"], {"seed": -1}):
        with pytest.raises(BenchError, match=r"p: parameter \w*seed=-\d must be ≥ 0 \(a seed\)"):
            parse_params(P, "p", pairs)


@pytest.mark.parametrize("pairs", [["lr=nan"], ["lr=inf"], ["lr=-Infinity"], {"lr": float("nan")},
                                   [("lr", float("inf"))]])
def test_non_finite_floats_are_refused_from_strings_and_typed_values(pairs: object) -> None:
    with pytest.raises(BenchError, match="parameter lr=.* must be a finite number"):
        parse_params(P, "p", pairs)  # type: ignore[arg-type]


def test_stored_shapes_the_record_only() -> None:
    p = parse_params(P, "p", ["url=abc"])
    assert p.url == "abc" and params_dict(p)["url"] == "ABC" and params_dict(P())["url"] is None
