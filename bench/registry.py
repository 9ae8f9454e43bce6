"""The plugin registries (tasks, retrievers, and the pipeline stages: fusers, re-rankers, expanders) and their
discovery through Python entry points.

A plugin module registers with a decorator; a package (ours included) lists that module under the entry-point group
`multitarget_bench.<tasks|retrievers|fusers|rerankers|expanders>`, so a third-party package adds a plugin without
touching this one. Names ending in ':' are prefixes: `st:` matches `st:<model>` and gets the suffix as its `spec`.
Stages are built as `factory(params, name)` and subclass the bases in bench/stages/base.py.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any, TypeVar

from bench.errors import BenchError, unknown_name

TASK_GROUP = "multitarget_bench.tasks"
RETRIEVER_GROUP = "multitarget_bench.retrievers"
FUSER_GROUP = "multitarget_bench.fusers"
RERANKER_GROUP = "multitarget_bench.rerankers"
EXPANDER_GROUP = "multitarget_bench.expanders"

T = TypeVar("T")


@dataclass(frozen=True)
class PluginMeta:
    """What a plugin is: shown by `bench list`, stored in every result."""

    name: str
    description: str
    kind: str
    factory: Callable[..., Any]
    params: type | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def param_defaults(self) -> dict[str, Any]:
        if self.params is None:
            return {}
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self.params):
            if f.default is not dataclasses.MISSING:
                out[f.name] = f.default
            elif f.default_factory is not dataclasses.MISSING:
                out[f.name] = f.default_factory()
        return out


class Registry:
    """Name → plugin metadata, filled by decorators and by loading entry points once."""

    def __init__(self, kind: str, group: str) -> None:
        self.kind = kind
        self.group = group
        self._items: dict[str, PluginMeta] = {}
        self._loaded = False

    def register(
        self, name: str, *, description: str, kind: str, params: type | None = None, **extra: Any
    ) -> Callable[[T], T]:
        def deco(factory: T) -> T:
            if name in self._items and self._items[name].factory is not factory:
                raise BenchError(f"{self.kind} {name!r} is registered twice")
            self._items[name] = PluginMeta(name, description, kind, factory, params, dict(extra))  # type: ignore[arg-type]
            return factory

        return deco

    def load_entry_points(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        for ep in entry_points(group=self.group):
            try:
                importlib.import_module(ep.value.split(":")[0])
            except ImportError as exc:  # a broken third-party plugin must not break the harness
                import warnings

                warnings.warn(f"{self.kind} plugin {ep.name!r} ({ep.value}) failed to load: {exc}", stacklevel=2)

    def all(self) -> dict[str, PluginMeta]:
        self.load_entry_points()
        return dict(sorted(self._items.items()))

    def get(self, name: str) -> tuple[PluginMeta, str | None]:
        """The plugin for `name`, and the spec after a prefix (`st:foo` → `foo`), else None."""
        items = self.all()
        if name in items and not name.endswith(":"):
            return items[name], None
        for aliased in items.values():  # aliases: `max` → combmax
            if name in aliased.extra.get("aliases", ()):
                return aliased, None
        if ":" in name:
            prefix, spec = name.split(":", 1)
            meta = items.get(prefix + ":")
            if meta is not None and spec:
                return meta, spec
        raise unknown_name(self.kind, name, items)


TASKS = Registry("task", TASK_GROUP)
RETRIEVERS = Registry("retriever", RETRIEVER_GROUP)
FUSERS = Registry("fuser", FUSER_GROUP)
RERANKERS = Registry("reranker", RERANKER_GROUP)
EXPANDERS = Registry("expander", EXPANDER_GROUP)
STAGE_REGISTRIES = {"fusers": FUSERS, "rerankers": RERANKERS, "expanders": EXPANDERS}


def register_task(name: str, *, description: str, kind: str, params: type | None = None, **extra: Any):  # type: ignore[no-untyped-def]
    """Register a task class under `name`. It is built as `factory(params)` and must subclass bench.task.Task."""
    return TASKS.register(name, description=description, kind=kind, params=params, **extra)


def register_retriever(name: str, *, description: str, kind: str, params: type | None = None, **extra: Any):  # type: ignore[no-untyped-def]
    """Register a retriever class under `name`; built as `factory(params)` (or `factory(params, spec)` for prefixes)."""
    return RETRIEVERS.register(name, description=description, kind=kind, params=params, **extra)


def register_fuser(name: str, *, description: str, params: type | None = None, **extra: Any):  # type: ignore[no-untyped-def]
    """Register a fusion method (a bench.stages.Fuser subclass, built as `factory(params, name)`)."""
    return FUSERS.register(name, description=description, kind="fuser", params=params, **extra)


def register_reranker(name: str, *, description: str, params: type | None = None, **extra: Any):  # type: ignore[no-untyped-def]
    """Register a re-ranker (a bench.stages.Reranker subclass, built as `factory(params, name)`)."""
    return RERANKERS.register(name, description=description, kind="reranker", params=params, **extra)


def register_expander(name: str, *, description: str, params: type | None = None, **extra: Any):  # type: ignore[no-untyped-def]
    """Register a query expander (a bench.stages.Expander subclass, built as `factory(params, name)`)."""
    return EXPANDERS.register(name, description=description, kind="expander", params=params, **extra)
