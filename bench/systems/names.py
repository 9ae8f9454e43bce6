"""System names: parse, print and canonicalise the name of a pipeline of stages.

Grammar (whitespace is not allowed outside quoted values):

    system    := retriever [ "[" kvs "]" ] { "+" expander [ "(" kvs ")" ] } [ "@" fuser [ "(" kvs ")" ] ]
                 { "+" reranker [ "(" kvs ")" ] }
    kvs       := kv { "," kv }
    kv        := key "=" value
    value     := bare | '"' json-string '"' | "(" [ value { "," value } ] ")"       (a tuple)
    retriever := a registered retriever name (prefix forms such as st:<model> included), or a '"'-quoted one

`+name` is an expander when `name` is a registered expander, else a re-ranker; an expander must come before `@` and
before any re-ranker. Examples: `minilm`, `amer[sampling=teacher]`, `amer@rrf(k=60)`, `minilm+mmr(λ=0.75)`,
`bm25+prf`, `minilm+subqueries(m=5)@rrf+mmr`.

The *canonical* name of a built system lists only parameters that differ from their defaults and that change
results (run settings such as device, threads and batch_size are left out, as is any field whose dataclass
metadata says `identity=False`), in the params dataclass's field order, and omits the default fuser
(round-robin). Keys may carry a display alias in field metadata (`alias="λ"`); either spelling parses. The same
canonical name is used as the result's `system`, its folder under results/<task>/, its row in `bench compare`, and is
a valid `--retriever` value that re-runs the same system.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from dataclasses import dataclass
from typing import Any

from bench.errors import BenchError
from bench.params import Quoted, Raw
from bench.registry import EXPANDERS, RERANKERS

DEFAULT_FUSER = "round-robin"
# Parameters that set how a run executes, not what it computes: never part of a system's name.
RUN_SETTINGS = frozenset({"device", "threads", "batch_size", "shard_size", "trust_remote_code"})
_BARE = re.compile(r"^[A-Za-z0-9_.:/\-λ]+$")
_SPECIAL = set('[]()@+,="')


@dataclass(frozen=True)
class StageRef:
    """A stage named in a system: its registered name and the parameters given for it (strings when parsed)."""

    name: str
    params: tuple[tuple[str, Any], ...] = ()

    def with_params(self, extra: dict[str, Any]) -> StageRef:
        merged = dict(self.params)
        merged.update(extra)
        return StageRef(self.name, tuple(merged.items()))


@dataclass(frozen=True)
class SystemSpec:
    """The stages of a system as named (not yet built): retriever, optional expander, optional fuser, re-rankers."""

    retriever: StageRef
    expander: StageRef | None = None
    fuser: StageRef | None = None
    rerankers: tuple[StageRef, ...] = ()

    def stages(self) -> list[tuple[str, StageRef]]:
        out: list[tuple[str, StageRef]] = [("retriever", self.retriever)]
        if self.expander is not None:
            out.append(("expander", self.expander))
        if self.fuser is not None:
            out.append(("fuser", self.fuser))
        out += [("reranker", r) for r in self.rerankers]
        return out

    @classmethod
    def from_stages(cls, stages: list[tuple[str, StageRef]]) -> SystemSpec:
        """The inverse of `stages()`."""
        by_kind: dict[str, Any] = {"rerankers": []}
        for kind, ref in stages:
            if kind == "reranker":
                by_kind["rerankers"].append(ref)
            else:
                by_kind[kind] = ref
        return cls(by_kind["retriever"], by_kind.get("expander"), by_kind.get("fuser"), tuple(by_kind["rerankers"]))

    def __str__(self) -> str:
        return format_system(self)


# ------------------------------------------------------------------------------------------------------- formatting
def format_value(value: Any) -> str:
    """A parameter value as written in a system name; `parse_value` reads it back."""
    if isinstance(value, Quoted):
        return json.dumps(str(value), ensure_ascii=False)
    if isinstance(value, Raw):
        return str(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "none"
    if isinstance(value, float):
        if math.isfinite(value) and value == int(value) and abs(value) < 1e15:
            return repr(value)  # 1.0 stays 1.0, so the type survives a round trip
        return repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, tuple | list):
        return "(" + ",".join(format_value(v) for v in value) + ")"
    text = str(value)
    if _BARE.match(text) and text.lower() not in ("none", "null", "true", "false"):
        return text
    return json.dumps(text, ensure_ascii=False)


def _format_kvs(params: tuple[tuple[str, Any], ...]) -> str:
    return ",".join(f"{k}={format_value(v)}" for k, v in params)


def _format_name(name: str) -> str:
    quote = any(c in _SPECIAL or c.isspace() for c in name)
    return json.dumps(name, ensure_ascii=False) if quote else name


def format_system(spec: SystemSpec) -> str:
    out = _format_name(spec.retriever.name)
    if spec.retriever.params:
        out += f"[{_format_kvs(spec.retriever.params)}]"
    if spec.expander is not None:
        out += "+" + spec.expander.name + (f"({_format_kvs(spec.expander.params)})" if spec.expander.params else "")
    if spec.fuser is not None:
        out += "@" + spec.fuser.name + (f"({_format_kvs(spec.fuser.params)})" if spec.fuser.params else "")
    for r in spec.rerankers:
        out += "+" + r.name + (f"({_format_kvs(r.params)})" if r.params else "")
    return out


# ---------------------------------------------------------------------------------------------------------- parsing
def split_systems(text: str) -> list[str]:
    """`--retriever a,b[x=1,y=2],c@rrf(k=60)` → the system names, split on commas outside brackets and quotes.
    Empty names (`a,,b`, `,`) are dropped; the caller decides what an empty result means."""
    out: list[str] = []
    depth, quoted, escaped, start = 0, False, False, 0
    for i, ch in enumerate(text):
        if quoted:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                quoted = False
            continue
        if ch == '"':
            quoted = True
        elif ch in "[(":
            depth += 1
        elif ch in "])":
            depth -= 1
        elif ch == "," and depth == 0:
            out.append(text[start:i])
            start = i + 1
    out.append(text[start:])
    return [name.strip() for name in out if name.strip()]


class _Reader:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def error(self, what: str) -> BenchError:
        return BenchError(f"system name {self.text!r}, at character {self.pos + 1}: {what}")

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def take(self, ch: str) -> None:
        if self.peek() != ch:
            raise self.error(f"expected {ch!r}, found {self.peek() or 'the end'!r}")
        self.pos += 1

    def quoted(self) -> str:
        start = self.pos
        decoder = json.JSONDecoder()
        try:
            value, end = decoder.raw_decode(self.text, start)
        except json.JSONDecodeError:
            raise self.error("unterminated or invalid quoted string") from None
        if not isinstance(value, str):
            raise self.error("expected a quoted string")
        self.pos = end
        return value

    def word(self, stop: str) -> str:
        start = self.pos
        while self.pos < len(self.text) and self.text[self.pos] not in stop:
            self.pos += 1
        return self.text[start:self.pos]

    def value(self) -> Any:
        ch = self.peek()
        if ch == '"':
            return Quoted(self.quoted())
        if ch == "(":
            self.take("(")
            items: list[Any] = []
            if self.peek() != ")":
                items.append(self.value())
                while self.peek() == ",":
                    self.take(",")
                    items.append(self.value())
            self.take(")")
            return tuple(items)
        word = self.word(",)]")
        if not word:
            raise self.error("expected a value")
        return Raw(word)

    def kvs(self, close: str) -> tuple[tuple[str, Any], ...]:
        items: list[tuple[str, Any]] = []
        while True:
            key = self.word("=,)]").strip()
            if not key:
                raise self.error("expected key=value")
            self.take("=")
            items.append((key, self.value()))
            if self.peek() == ",":
                self.take(",")
                continue
            self.take(close)
            return tuple(items)

    def stage_name(self) -> str:
        if self.peek() == '"':
            return self.quoted()
        name = self.word("[]()@+,")
        if not name:
            raise self.error("expected a stage name")
        return name


def parse_system(text: str) -> SystemSpec:
    """Parse a system name (see the module docstring). `+stage` is classified with the stage registries."""
    text = text.strip()
    if not text:
        raise BenchError("empty system name")
    r = _Reader(text)
    retriever = StageRef(r.stage_name())
    if r.peek() == "[":
        r.take("[")
        retriever = StageRef(retriever.name, r.kvs("]"))
    expander: StageRef | None = None
    fuser: StageRef | None = None
    rerankers: list[StageRef] = []
    while r.pos < len(text):
        sep = r.peek()
        if sep not in "+@":
            raise r.error(f"expected '+' or '@', found {sep!r}")
        r.take(sep)
        name = r.stage_name()
        params: tuple[tuple[str, Any], ...] = ()
        if r.peek() == "(":
            r.take("(")
            params = r.kvs(")")
        ref = StageRef(name, params)
        if sep == "@":
            if fuser is not None:
                raise r.error("a system has at most one fuser ('@')")
            if rerankers:
                raise r.error("the fuser ('@') comes before any re-ranker")
            fuser = ref
        elif EXPANDERS.has(name):
            if expander is not None:
                raise r.error("a system has at most one expander")
            if fuser is not None or rerankers:
                raise r.error(f"expander {name!r} must come right after the retriever (before '@' and re-rankers)")
            expander = ref
        elif RERANKERS.has(name):
            rerankers.append(ref)
        else:
            known = sorted(set(EXPANDERS.all()) | set(RERANKERS.all()))
            raise BenchError(f"system name {text!r}: {name!r} is neither an expander nor a re-ranker; known stages: "
                             f"{', '.join(known) or 'none'}")
    return SystemSpec(retriever, expander, fuser, tuple(rerankers))


# ----------------------------------------------------------------------------------------------- canonical params
def identity_params(params: Any, defaults: dict[str, Any] | None = None) -> tuple[tuple[str, Any], ...]:
    """The non-default, result-changing parameters of a built params dataclass, as (display key, value) pairs."""
    if params is None:
        return ()
    out: list[tuple[str, Any]] = []
    for f in dataclasses.fields(params):
        identity = f.metadata.get("identity")  # a field may say True (it changes results) or False explicitly
        if identity is False or (f.name in RUN_SETTINGS and identity is not True):
            continue
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = dataclasses.MISSING
        value = getattr(params, f.name)
        if defaults is not None and f.name in defaults:
            default = defaults[f.name]
        if _same(value, default):
            continue
        optional = "None" in str(f.type) or "Optional" in str(f.type)
        if isinstance(value, str) and _BARE.match(value) and not optional:
            value = Raw(value)  # a plain-str field: `none` / `true` are strings there, no quotes needed
        out.append((f.metadata.get("alias", f.name), value))
    return tuple(out)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) or isinstance(b, float):
        try:
            return float(a) == float(b)
        except (TypeError, ValueError):
            return False
    return bool(a == b) and type(a) is type(b) or (a is None and b is None)
