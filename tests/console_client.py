"""The operator console as an ASGI app over a test's database, for tests of its sections' routes.

The routes need a signed-in operator; until the console's login is what a test goes through, the
``current_operator`` dependency names one, which is all a section reads of the session.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from fastapi.testclient import TestClient

from cove.config import Settings
from cove.console.auth import current_operator
from cove.console.server import create_app

OPERATOR = "test-operator"


@contextmanager
def console(database_url: str, data_dir: Path) -> Iterator[TestClient]:
    data_dir.mkdir(parents=True, exist_ok=True)
    app = create_app(Settings(data_dir=data_dir, database_url=database_url), local_only=False)
    app.dependency_overrides[current_operator] = lambda: OPERATOR
    with TestClient(app, follow_redirects=False) as client:
        yield client


def chart_figures(html: str, chart_id: str) -> dict[str, dict[str, float]]:
    """The figures a chart was drawn from (the JSON its canvas and its table are both made of): series label ->
    x label -> value."""
    found = re.search(rf'<script type="application/json" id="{re.escape(chart_id)}-data">(.*?)</script>', html, re.S)
    assert found is not None, f"no chart {chart_id} on the page"
    spec = json.loads(found.group(1))
    return {s["label"]: dict(zip(spec["labels"], s["data"], strict=True)) for s in spec["series"]}
