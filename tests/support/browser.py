"""A real browser for the report tests: Debian's Chromium (`apt-get install chromium`) driven by Playwright (the
`browser` extra; Playwright's own browser download is never used). Where Chromium is missing the test fails and
says how to install it: CI (.ci/run) installs it, so the browser test always runs there.

`python -m tests.support.browser PAGE.html SHOT.png` screenshots a page (used while building the report)."""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

CHROMIUM = os.environ.get("CHROMIUM_BIN") or shutil.which("chromium") or "/usr/bin/chromium"
INSTALL = ("the report's browser test needs Debian's Chromium: apt-get update && DEBIAN_FRONTEND=noninteractive "
           "apt-get install -y --no-install-recommends chromium (or set CHROMIUM_BIN); and Playwright: "
           "pip install -e '.[browser]' (never `playwright install`)")

ARGS = [
    "--headless=new",
    "--no-sandbox",  # CI runs as root
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-quic",
    "--metrics-recording-only",
    # Chromium looks up Google hosts at start even with the flags above: every DNS lookup fails locally instead.
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE localhost",
    # no --disable-features: Chromium keeps only the last one, which would replace Playwright's own list
]


def missing() -> str | None:
    """Why the browser cannot start here (with how to install what is missing), else None."""
    if not Path(CHROMIUM).is_file():
        return f"Chromium not found at {CHROMIUM}: {INSTALL}"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return f"Playwright is not installed: {INSTALL}"
    return None


@contextlib.contextmanager
def chromium_page(width: int = 1400, height: int = 900) -> Iterator[Any]:
    """A page of a fresh headless Chromium; the caller attaches its listeners before `goto`."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS, chromium_sandbox=False)
        try:
            yield browser.new_page(viewport={"width": width, "height": height})
        finally:
            browser.close()


if __name__ == "__main__":
    page_path, shot = Path(sys.argv[1]).resolve(), Path(sys.argv[2])
    with chromium_page() as page:
        page.goto(page_path.as_uri(), wait_until="load")
        page.screenshot(path=str(shot), full_page=True)
    print(shot)
