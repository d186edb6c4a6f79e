"""Templates and static files of the pages, found in the packages that use them and in this one."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from jinja2 import ChoiceLoader, Environment, PackageLoader, select_autoescape

from cove.cli_guard import CommandError

STATIC = Path(__file__).parent / "static"
VENDOR = STATIC / "vendor"
# What the layout loads; `make assets` copies them from web/node_modules.
LIBRARIES = ("htmx.min.js", "sse.min.js", "chart.umd.min.js")


class AssetsMissing(CommandError):
    """The browser libraries were not installed: the page would load without them and half work."""


def require_built() -> None:
    missing = [name for name in LIBRARIES if not (VENDOR / name).is_file()]
    if missing:
        raise AssetsMissing(
            f"the pages' JavaScript libraries are not installed ({', '.join(missing)} missing from {VENDOR}): "
            "run `make assets` in Cove's folder (it needs Node.js and npm)"
        )


def templates(package: str) -> Jinja2Templates:
    """The templates of ``package`` (its ``templates`` folder) over the shared layout; every value is escaped."""
    env = Environment(
        loader=ChoiceLoader([PackageLoader(package, "templates"), PackageLoader("cove.web", "templates")]),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return Jinja2Templates(env=env)


def mount_static(app: FastAPI) -> None:
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
