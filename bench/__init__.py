"""multitarget-bench: a harness for multi-target retrieval (several right answers per query).

The Python API (bench/api.py) is at the top of the package: `bench.evaluate(model_or_system, task=...)`,
`bench.load_runs(task)`, `bench.compare(task)`. `import bench` stays light: each is loaded when first used.
"""

from __future__ import annotations

import sys
import types
from typing import Any

__version__ = "0.1.0"

_API = ("evaluate", "load_runs", "compare")
__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    if name in _API:
        from bench import api

        return getattr(api, name)
    raise AttributeError(f"module 'bench' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_API])


class _Package(types.ModuleType):
    """`bench.evaluate` is the API function although the orchestrator, bench/evaluate.py, is a submodule of the same
    name: importing a submodule sets it as an attribute of its package, which would hide the function, so these
    names are never bound to submodules. Import the orchestrator's names with `from bench.evaluate import ...`."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _API and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
