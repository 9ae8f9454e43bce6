"""The plugin registries — one mechanism for every kind of plugin: tasks, retrievers, the three kinds of stage
(expanders, fusers, re-rankers), training objectives and metrics.

A plugin registers itself with a decorator in its own module (`@register_fuser("rrf", ...)`). A registry finds its
plugins in two ways, the first time it is asked for them:

- **built-in**: every module of the registry's built-in package(s) is imported (`bench/systems/fusion/*.py` for
  fusers, `tasks/*.py` for tasks, …), so a new built-in plugin is one new file there — no list to edit, no reinstall;
  modules whose name starts with `_` are helpers and are not imported by the scan;
- **third-party**: every module listed under the entry-point group `multitarget_bench.<kind>s` of an installed
  package (see docs/architecture.md), so another package adds a plugin without touching this one.

Names ending in ':' are prefixes: `st:` matches `st:<model>` and hands the suffix to the factory as its `spec`.
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any, TypeVar

from bench.errors import BenchError, unknown_name

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
        """Every parameter with its default (a visible default is one a user can read before running)."""
        if self.params is None:
            return {}
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self.params):
            if f.default is not dataclasses.MISSING:
                out[f.name] = f.default
            elif f.default_factory is not dataclasses.MISSING:
                out[f.name] = f.default_factory()
        return out

    def param_names(self) -> dict[str, str]:
        """Field name → the name a user writes (its display alias, e.g. λ for lambda_, else the field name)."""
        if self.params is None:
            return {}
        return {f.name: f.metadata.get("alias", f.name) for f in dataclasses.fields(self.params)}


class Registry:
    """Name → plugin metadata for one kind of plugin, filled by decorators; see the module docstring."""

    def __init__(self, kind: str, builtin: tuple[str, ...] = (), case_insensitive: bool = False,
                 group: str | None = None) -> None:
        self.kind = kind
        self.group = group or f"multitarget_bench.{kind}s"
        self.builtin = builtin
        self.case_insensitive = case_insensitive
        self._items: dict[str, PluginMeta] = {}
        self._loaded = False

    def register(self, name: str, *, description: str, kind: str | None = None, params: type | None = None,
                 **extra: Any) -> Callable[[T], T]:
        """Decorator: register `factory` under `name` (its `kind` defaults to the registry's)."""

        def deco(factory: T) -> T:
            if name in self._items and self._items[name].factory is not factory:
                raise BenchError(f"{self.kind} {name!r} is registered twice")
            self._items[name] = PluginMeta(name, description, kind or self.kind, factory,  # type: ignore[arg-type]
                                           params, dict(extra))
            return factory

        return deco

    def load(self) -> None:
        """Import the built-in plugin modules and the third-party entry points (once)."""
        if self._loaded:
            return
        self._loaded = True  # first: a plugin module may look up its own registry while it is imported
        for package in self.builtin:
            pkg = importlib.import_module(package)
            for mod in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
                if not mod.name.startswith("_"):
                    self._import(f"{package}.{mod.name}", f"built-in module {package}.{mod.name}")
        for ep in entry_points(group=self.group):
            self._import(ep.value.split(":")[0], f"plugin {ep.name!r} ({ep.value})")

    def _import(self, module: str, what: str) -> None:
        try:
            importlib.import_module(module)
        except ImportError as exc:  # a broken plugin (a missing optional dependency) must not break the harness
            warnings.warn(f"{self.kind} {what} failed to load: {exc}", stacklevel=3)

    def all(self) -> dict[str, PluginMeta]:
        self.load()
        return dict(sorted(self._items.items()))

    def get(self, name: str) -> tuple[PluginMeta, str | None]:
        """The plugin for `name`, and the spec after a prefix (`st:foo` → `foo`), else None."""
        items = self.all()
        if name in items and not name.endswith(":"):
            return items[name], None
        for meta in items.values():
            if name in meta.extra.get("aliases", ()):  # `max` → combmax
                return meta, None
            if self.case_insensitive and name.lower() == meta.name.lower():
                return meta, None
        if ":" in name:
            prefix, spec = name.split(":", 1)
            meta_ = items.get(prefix + ":")
            if meta_ is not None and spec:
                return meta_, spec
        raise unknown_name(self.kind, name, items)

    def has(self, name: str) -> bool:
        """Whether `name` resolves to a plugin of this kind (aliases and prefix forms included)."""
        try:
            self.get(name)
        except BenchError:
            return False
        return True

    def canonical(self, name: str) -> str:
        """The registered name `name` resolves to (an alias → its plugin's name)."""
        return self.get(name)[0].name


TASKS = Registry("task", builtin=("tasks",))
RETRIEVERS = Registry("retriever", builtin=("retrievers",))
EXPANDERS = Registry("expander", builtin=("bench.systems.expand",))
FUSERS = Registry("fuser", builtin=("bench.systems.fusion",))
RERANKERS = Registry("reranker", builtin=("bench.systems.rerank",))
OBJECTIVES = Registry("objective", builtin=("bench.train.objectives",))
# a metric is a measure at a cutoff (MRECALL@10): the registry holds the measures
METRICS = Registry("measure", builtin=("bench.metrics",), case_insensitive=True, group="multitarget_bench.metrics")

# Every registry by its kind (`-r <kind>.key=value`, a system's stage kinds; `bench list metrics` lists measures).
REGISTRIES: dict[str, Registry] = {r.kind: r for r in (TASKS, RETRIEVERS, EXPANDERS, FUSERS, RERANKERS, OBJECTIVES,
                                                        METRICS)}
STAGE_KINDS = ("retriever", "expander", "fuser", "reranker")  # in pipeline order


def register_task(name: str, *, description: str, kind: str, params: type | None = None, **extra: Any):  # type: ignore[no-untyped-def]
    """Register a task class under `name`. It is built as `factory(params, name)` and must subclass
    bench.data.task.Task."""
    return TASKS.register(name, description=description, kind=kind, params=params, **extra)


def register_retriever(name: str, *, description: str, kind: str, params: type | None = None, **extra: Any):  # type: ignore[no-untyped-def]
    """Register a retriever class under `name`; built as `factory(params, name, spec)` (spec: a prefix's suffix)."""
    return RETRIEVERS.register(name, description=description, kind=kind, params=params, **extra)


def register_fuser(name: str, *, description: str, params: type | None = None, **extra: Any):  # type: ignore[no-untyped-def]
    """Register a fusion method (a bench.systems.stages.Fuser subclass, built as `factory(params, name)`)."""
    return FUSERS.register(name, description=description, params=params, **extra)


def register_reranker(name: str, *, description: str, params: type | None = None, **extra: Any):  # type: ignore[no-untyped-def]
    """Register a re-ranker (a bench.systems.stages.Reranker subclass, built as `factory(params, name)`)."""
    return RERANKERS.register(name, description=description, params=params, **extra)


def register_expander(name: str, *, description: str, params: type | None = None, **extra: Any):  # type: ignore[no-untyped-def]
    """Register a query expander (a bench.systems.stages.Expander subclass, built as `factory(params, name)`)."""
    return EXPANDERS.register(name, description=description, params=params, **extra)


def register_objective(name: str, *, description: str, **extra: Any):  # type: ignore[no-untyped-def]
    """Register a training objective (a bench.train.objectives.Objective subclass, built as `factory(cfg)`)."""
    def deco(cls: T) -> T:
        cls.name = name  # type: ignore[attr-defined]
        return OBJECTIVES.register(name, description=description, **extra)(cls)

    return deco


def register_metric(name: str, *, description: str, lower: float = 0.0, upper: float = 1.0, **extra: Any):  # type: ignore[no-untyped-def]
    """Register a measure: `fn(ranking, targets, k) -> per-query values` in [lower, upper], named `NAME@k` in runs
    (bench.metrics.Metric); `whole=True` when every per-query value is a whole number (a count, or 0 / 1). Results
    read back are held to both."""
    return METRICS.register(name, description=description, lower=lower, upper=upper, **extra)
