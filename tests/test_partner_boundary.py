"""The partner is a separate service: it may import only the published wire format of the messenger.

Two checks: statically, every import statement in every module of ``cove.partner``; dynamically, what importing
all of them actually loads (which would catch the wire module itself growing a dependency on the messenger).
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import cove.partner

PARTNER_DIR = Path(cove.partner.__file__).parent
ALLOWED_PREFIX = "cove.partner"
ALLOWED_MODULES = {"cove.sharing.wire"}
# Packages Python must load to reach the allowed modules; each must stay free of imports of its own.
PARENT_PACKAGES = {"cove", "cove.sharing"}


def _allowed(module: str) -> bool:
    return module == ALLOWED_PREFIX or module.startswith(ALLOWED_PREFIX + ".") or module in ALLOWED_MODULES


def _modules() -> list[tuple[str, Path]]:
    return [
        (".".join(("cove", "partner", *path.relative_to(PARTNER_DIR).with_suffix("").parts)), path)
        for path in sorted(PARTNER_DIR.rglob("*.py"))
    ]


def _imported(module: str, path: Path) -> list[tuple[int, str]]:
    """Every cove module an import statement names: ``from a import b`` names ``a.b`` when b is a module."""
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            found += [(node.lineno, base if _allowed(base) else f"{base}.{alias.name}") for alias in node.names]
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute | ast.Name):
            name = node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id
            if name in {"import_module", "__import__"} and node.args and isinstance(node.args[0], ast.Constant):
                found.append((node.lineno, str(node.args[0].value)))
    return [(line, name) for line, name in found if name == "cove" or name.startswith("cove.")]


def test_partner_modules_import_only_the_wire_format_of_the_messenger() -> None:
    modules = _modules()
    assert len(modules) >= 5, "the walk found the partner package's modules"
    violations = [
        f"{path.relative_to(PARTNER_DIR.parent.parent)}:{line} imports {name}"
        for module, path in modules
        for line, name in _imported(module, path)
        if not _allowed(name)
    ]
    assert violations == []


def test_the_boundary_check_catches_what_it_should(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text(
        "import cove.accounts\nfrom cove import db\nfrom cove.sharing import gateway, wire\n"
        "from .. import config\nfrom . import store\nimport importlib\nimportlib.import_module('cove.clock')\n"
    )
    names = [name for _, name in _imported("cove.partner.probe", probe)]
    assert [n for n in names if not _allowed(n)] == [
        "cove.accounts",
        "cove.db",
        "cove.sharing.gateway",
        "cove.config",
        "cove.clock",
    ]


def test_importing_the_partner_loads_nothing_else_of_the_messenger() -> None:
    modules = [module for module, path in _modules() if path.name != "__init__.py"]
    code = (
        "import importlib, json, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        "print(json.dumps(sorted(m for m in sys.modules if m == 'cove' or m.startswith('cove.'))))"
    )
    loaded = json.loads(subprocess.run([sys.executable, "-c", code], check=True, capture_output=True).stdout)
    assert [m for m in loaded if not _allowed(m) and m not in PARENT_PACKAGES] == []
