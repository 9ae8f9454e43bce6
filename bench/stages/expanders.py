"""Entry point of the built-in query expanders: imports every bench/stages/expand_*.py module, whose
`@register_expander` decorators fill bench.registry.EXPANDERS (a module that fails to import is reported, not
fatal, like any plugin)."""

from __future__ import annotations

import importlib
import pkgutil
import warnings

import bench.stages as _pkg

for _mod in sorted(pkgutil.iter_modules(_pkg.__path__), key=lambda m: m.name):
    if _mod.name.startswith("expand_"):
        try:
            importlib.import_module(f"bench.stages.{_mod.name}")
        except ImportError as exc:  # pragma: no cover - an optional dependency missing
            warnings.warn(f"expander module bench.stages.{_mod.name} failed to load: {exc}", stacklevel=2)
