"""What the browser tests share: the app and the console as real processes, and a page's screenshots and
accessibility check."""

from __future__ import annotations

import os
import re
import selectors
import subprocess
import sys
import time
from pathlib import Path

from playwright.sync_api import Page

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("COVE_TEST_ARTIFACTS", REPO / "test-artifacts")) / "screenshots"
AXE = REPO / "web" / "node_modules" / "axe-core" / "axe.min.js"
SIZES = {"desktop": {"width": 1280, "height": 800}, "phone": {"width": 390, "height": 844}}
URL = re.compile(r"(http://127\.0\.0\.1:\d+\S*)")


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
    return page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth + 1")
