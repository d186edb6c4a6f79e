"""What the browser tests share: the app and the console as real processes, and a page's screenshots and
accessibility check."""

from __future__ import annotations

import asyncio
import os
import re
import selectors
import subprocess
import sys
import time
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from playwright.sync_api import Page

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("COVE_TEST_ARTIFACTS", REPO / "test-artifacts")) / "screenshots"
AXE = REPO / "web" / "node_modules" / "axe-core" / "axe.min.js"
SIZES = {"desktop": {"width": 1280, "height": 800}, "phone": {"width": 390, "height": 844}}
URL = re.compile(r"(http://127\.0\.0\.1:\d+\S*)")
T = TypeVar("T")
# The figure in a chart's table (the chart macro's data-chart-table) at a row and a column, or null.
CELL = """([id, row, col]) => {
  const table = document.querySelector(`[data-chart-table="${id}"]`);
  if (!table) return null;
  const cols = [...table.tHead.rows[0].cells].map(c => c.textContent.trim());
  const found = [...table.tBodies[0].rows].find(r => r.cells[0].textContent.trim() === row);
  return found ? found.cells[cols.indexOf(col)].textContent.trim() : null;
}"""
FITS = "() => document.documentElement.scrollWidth <= window.innerWidth + 1"


class PageProcess:
    """A `cove` command that serves a page: started, its URL read from its first lines, stopped at the end."""

    def __init__(self, argv: list[str], env: dict[str, str], log: Path, stdin: str | None = None) -> None:
        self.log = log
        self._err = open(log, "ab")  # noqa: SIM115 - the child's, closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cove", *argv],
            env={**os.environ, **env},
            stdout=subprocess.PIPE,
            stderr=self._err,
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
        )
        if stdin is not None:
            assert self.proc.stdin is not None
            self.proc.stdin.write(stdin.encode())
            self.proc.stdin.close()
        self.url = self._read_url()
        self.base = self.url.split("/", 3)[:3]
        self.base = "/".join(self.base)

    def _read_url(self, timeout: float = 30.0) -> str:
        assert self.proc.stdout is not None
        selector = selectors.DefaultSelector()
        selector.register(self.proc.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not selector.select(timeout=0.2):
                if self.proc.poll() is not None:
                    break
                continue
            line = self.proc.stdout.readline().decode()
            if not line and self.proc.poll() is not None:
                break
            found = URL.search(line)
            if found:
                return found.group(1)
        self.stop()
        raise RuntimeError(f"no URL from {self.proc.args}: {self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._err.close()


def screenshots(page: Page, name: str) -> list[Path]:
    """The page at desktop and phone sizes, as test artifacts (``test-artifacts/screenshots``); the viewport is
    put back after."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    before = page.viewport_size
    written = []
    for size, viewport in SIZES.items():
        page.set_viewport_size(viewport)
        # Charts resize on a ResizeObserver callback: two animation frames later they fit the new width.
        page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
        path = ARTIFACTS / f"{name}-{size}.png"
        page.screenshot(path=str(path), full_page=True)
        written.append(path)
    if before is not None:
        page.set_viewport_size(before)
    return written


def accessibility_problems(page: Page) -> list[str]:
    """axe-core's serious and critical WCAG 2 A/AA violations on the page as it is now."""
    page.add_script_tag(path=str(AXE))
    result = page.evaluate(
        "async () => await axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21aa']}})"
    )
    return [
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}"
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]


def no_horizontal_scroll(page: Page) -> bool:
    """At phone size nothing sticks out sideways (a page that does is not usable on a phone)."""
    return page.evaluate(FITS)


def check_page(page: Page, name: str) -> None:
    """Nothing sideways at phone size (once the charts have followed the window: Chart.js resizes on its next
    frame), no serious accessibility problem, and both sizes' screenshots."""
    before = page.viewport_size
    page.set_viewport_size(SIZES["phone"])
    page.wait_for_function(FITS)
    assert no_horizontal_scroll(page)
    page.set_viewport_size(before or SIZES["desktop"])
    assert accessibility_problems(page) == []
    screenshots(page, name)


def off_the_loop(work: Coroutine[Any, Any, T]) -> T:
    """Run SDK calls or set-up beside Playwright: its sync API keeps an event loop running on the test's thread,
    so asyncio.run needs a thread of its own."""
    with ThreadPoolExecutor(1) as worker:
        return worker.submit(asyncio.run, work).result()


def chart_cell(page: Page, chart: str, row: str, col: str) -> str | None:
    return page.evaluate(CELL, [chart, row, col])


def wait_for_chart_cell(page: Page, chart: str, row: str, col: str, value: str) -> None:
    page.wait_for_function(f"args => ({CELL})(args) === args[3]", arg=[chart, row, col, value])
