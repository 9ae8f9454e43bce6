"""The one exception type the CLI turns into a single readable error line."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class BenchError(Exception):
    """A user-facing error: bad input, unknown name, missing data. Printed as one line, never a traceback."""


def unknown_name(kind: str, name: str, known: Iterable[str]) -> BenchError:
    """An error for an unknown registry name that lists the close matches (or all names when none is close)."""
    known = sorted(known)
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
    hint = f"did you mean {', '.join(close)}?" if close else f"known: {', '.join(known) or '(none)'}"
    return BenchError(f"unknown {kind} {name!r}; {hint}")


class DamagedEntry(BenchError):
    """A cache entry that exists but cannot be used (truncated, corrupt, wrong content): bench.storage.cache moves it
    aside
    and rebuilds it instead of stopping. Raise it from a cache entry's `load` function."""
