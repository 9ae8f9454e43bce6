"""Plugin parameters: dataclasses parsed from `key=value` strings, validated, recorded in every result."""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any

from bench.errors import BenchError


def _convert(owner: str, field: dataclasses.Field[Any], raw: str, hint: Any) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):
        non_none = [a for a in args if a is not type(None)]
        if raw.lower() in ("none", "null") and len(non_none) < len(args):
            return None
        hint = non_none[0]
    try:
        if hint is bool:
            if raw.lower() in ("1", "true", "yes", "on"):
                return True
            if raw.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        if hint in (int, float, str):
            return hint(raw)
        if typing.get_origin(hint) is tuple or hint is tuple:
            inner = typing.get_args(hint)[0] if typing.get_args(hint) else str
            return tuple(inner(x) for x in raw.split(",") if x)
    except ValueError:
        type_name = getattr(hint, "__name__", hint)
        raise BenchError(f"{owner}: parameter {field.name}={raw!r} is not a valid {type_name}") from None
    return raw


def parse_params(cls: type | None, owner: str, pairs: Sequence[str] | Mapping[str, Any] = ()) -> Any:
    """Build the params dataclass `cls` from `key=value` strings (CLI) or a mapping (config files, stored runs).

    The strings are split here; typing, aliases and errors are `bench.stages.system.build_params`'s, the one place
    that turns (key, value) pairs into a params dataclass for tasks, retrievers and stages alike."""
    from bench.stages.system import build_params

    items: list[tuple[str, Any]]
    if isinstance(pairs, Mapping):
        items = list(pairs.items())
    else:
        items = []
        for pair in pairs:
            if "=" not in pair:
                raise BenchError(f"{owner}: parameter {pair!r} is not of the form key=value")
            key, raw = pair.split("=", 1)
            items.append((key.strip().replace("-", "_"), raw.strip()))
    return build_params(cls, owner, tuple(items))


def params_dict(params: Any) -> dict[str, Any]:
    """All parameter values, defaults included, so a result shows what it ran with."""
    return {} if params is None else dataclasses.asdict(params)


def positive(owner: object, **values: float) -> None:
    """Raise ValueError (turned into a BenchError by parse_params) for any value that is not > 0."""
    for name, value in values.items():
        if value is None or value <= 0:
            raise ValueError(f"{name} must be > 0, got {value}")
