"""Plugin parameters: frozen dataclasses built from `key=value` strings (the CLI), typed pairs (a system name) or a
mapping (a config file, a stored run); validated once, here, and recorded in every result.

A field may carry metadata: `alias` (the spelling a user writes, e.g. `λ` for `lambda_`; either parses) and
`identity` (False: a run setting left out of a system's canonical name; bench/systems/names.py).
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Iterable, Mapping
from typing import Any

from bench.errors import BenchError

Pairs = Iterable[str] | Iterable[tuple[str, Any]] | Mapping[str, Any]


class Quoted(str):
    """A value that was quoted in a system name: always a string, never converted to None / bool; prints quoted."""


class Raw(str):
    """A bare value as written in a system name or `-r`: converted by the field's type when built."""


def split_pair(pair: str, owner: str = "parameter") -> tuple[str, str]:
    """`key=value` → (key, value), both stripped: the one place a `key=value` string is split."""
    if "=" not in pair:
        raise BenchError(f"{owner} {pair!r} is not of the form key=value")
    key, value = pair.split("=", 1)
    return key.strip(), value.strip()


def items_of(pairs: Pairs, owner: str = "parameter") -> list[tuple[str, Any]]:
    """(key, value) pairs from `key=value` strings (values stay strings, to be typed by the field), (key, value)
    tuples or a mapping (values kept as they are)."""
    if isinstance(pairs, Mapping):
        return list(pairs.items())
    out: list[tuple[str, Any]] = []
    for item in pairs:
        if isinstance(item, tuple):
            out.append((str(item[0]), item[1]))
        else:
            key, value = split_pair(str(item), owner)
            out.append((key, Raw(value)))
    return out


def field_alias(cls: type | None, key: str) -> str:
    """The dataclass field a key names: its own name, its display alias (`λ`), or the key with '-' for '_'."""
    if cls is None:
        return key
    for f in dataclasses.fields(cls):
        if key in (f.name, f.metadata.get("alias"), f.name.replace("_", "-")):
            return f.name
    return key.replace("-", "_")


def field_names(cls: type | None) -> set[str]:
    return set() if cls is None else {f.name for f in dataclasses.fields(cls)}


def convert(owner: str, name: str, raw: str, hint: Any) -> Any:
    """A string value typed by a field's annotation: bool, int, float, str, tuple[...] (comma-separated), Optional."""
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
            value = hint(raw)
            if hint is float and not math.isfinite(value):
                raise BenchError(f"{owner}: parameter {name}={raw!r} must be a finite number")
            return value
        if typing.get_origin(hint) is tuple or hint is tuple:
            inner = typing.get_args(hint)[0] if typing.get_args(hint) else str
            return tuple(inner(x) for x in raw.split(",") if x)
    except ValueError:
        type_name = getattr(hint, "__name__", hint)
        raise BenchError(f"{owner}: parameter {name}={raw!r} is not a valid {type_name}") from None
    return raw


def _typed(owner: str, name: str, raw: Any, hint: Any) -> Any:
    if isinstance(raw, Quoted):
        return str(raw)
    if isinstance(raw, list):
        raw = tuple(raw)
    if isinstance(raw, tuple):
        inner_hint = hint
        if typing.get_origin(hint) in (types.UnionType, typing.Union):
            inner_hint = next(a for a in typing.get_args(hint) if a is not type(None))
        args = typing.get_args(inner_hint)
        inner = args[0] if args else str
        return tuple(_typed(owner, name, x, inner) for x in raw)
    if isinstance(raw, str):
        return convert(owner, name, raw, hint)
    if isinstance(raw, float) and not math.isfinite(raw):  # a typed value (a YAML file, a stored run): as `convert`
        raise BenchError(f"{owner}: parameter {name}={raw!r} must be a finite number")
    return raw


def parse_params(cls: type | None, owner: str, pairs: Pairs = ()) -> Any:
    """Build the params dataclass `cls` (None: the plugin takes no parameters) from `pairs` (see `items_of`): string
    values are converted by the field's type (tuples element-wise), quoted strings stay strings, typed values are
    kept. An unknown key is one BenchError naming the plugin (`owner`) and its known keys; so is a value the
    dataclass's own checks refuse."""
    items = items_of(pairs, f"{owner}: parameter")
    if cls is None:
        if items:
            raise BenchError(f"{owner} takes no parameters (got {', '.join(k for k, _ in items)})")
        return None
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for key, raw in items:
        name = key if key in fields else field_alias(cls, key.strip())
        if name not in fields:
            known = ", ".join(f.metadata.get("alias", f.name) for f in fields.values())
            raise BenchError(f"{owner}: unknown parameter {key!r}; known: {known}")
        values[name] = _typed(owner, name, raw, hints[name])
        if is_seed(name) and isinstance(values[name], int) and values[name] < 0:  # numpy takes seeds ≥ 0 only
            raise BenchError(f"{owner}: parameter {name}={values[name]} must be ≥ 0 (a seed)")
    try:
        return cls(**values)
    except (ValueError, TypeError) as exc:
        raise BenchError(f"{owner}: {exc}") from None


def is_seed(name: str) -> bool:
    """Whether a parameter is a seed (`seed`, `split_seed`, …): an integer ≥ 0, checked where it is parsed."""
    return name == "seed" or name.endswith("_seed")


def params_dict(params: Any) -> dict[str, Any]:
    """All parameter values, defaults included, so a result shows what it ran with. A field whose metadata has a
    `stored` function is recorded through it (an endpoint URL without its credentials: bench/llm/redact.py)."""
    if params is None:
        return {}
    out = dataclasses.asdict(params)
    for f in dataclasses.fields(params):
        stored = f.metadata.get("stored")
        if stored is not None and out.get(f.name) is not None:
            out[f.name] = stored(out[f.name])
    return out


def positive(owner: object, **values: float) -> None:
    """Raise ValueError (turned into a BenchError by parse_params) for any value that is not > 0."""
    for name, value in values.items():
        if value is None or value <= 0:
            raise ValueError(f"{name} must be > 0, got {value}")
