"""The layers of cove, as pyproject.toml's [tool.importlinter] contract states them (``make lint`` runs
``lint-imports`` on it): no package imports a higher one, the SDK imports no service. The same contract is
checked here on the real import graph, and shown to catch an upward import; so is every "forbidden" contract (the
SDK and the app import no service)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import grimp
import pytest

CONFIG = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["tool"]["importlinter"]
LAYERS_CONTRACT, *FORBIDDEN = CONFIG["contracts"]
SDK_CONTRACT = next(c for c in FORBIDDEN if c["source_modules"] == ["cove.client"])


def _layer(line: str) -> grimp.Layer:
    independent = "|" in line
    return grimp.Layer(*(name.strip() for name in line.replace(":", "|").split("|")), independent=independent)


LAYERS = [_layer(line) for line in LAYERS_CONTRACT["layers"]]


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    graph = grimp.build_graph("cove", exclude_type_checking_imports=CONFIG["exclude_type_checking_imports"])
    ignored = [tuple(_pattern(part) for part in line.split("->")) for line in LAYERS_CONTRACT.get("ignore_imports", [])]
    for importer in list(graph.modules):
        for imported in graph.find_modules_directly_imported_by(importer):
            if any(a.fullmatch(importer) and b.fullmatch(imported) for a, b in ignored):
                graph.remove_import(importer=importer, imported=imported)
    return graph


def _pattern(module: str) -> re.Pattern[str]:
    """import-linter's wildcards: ``*`` one module name, ``**`` one or more."""
    parts = [r"\w+(\.\w+)*" if p == "**" else r"\w+" if p == "*" else re.escape(p) for p in module.strip().split(".")]
    return re.compile(r"\.".join(parts))


def _upward(graph: grimp.ImportGraph) -> list[str]:
    return sorted(
        f"{d.importer} -> {d.imported} via {sorted(r.heads)}"
        for d in graph.find_illegal_dependencies_for_layers(layers=LAYERS)
        for r in d.routes
    )


def _forbidden_imports(graph: grimp.ImportGraph, contract: dict) -> list[str]:
    return sorted(
        f"{source} -> {service}"
        for source in contract["source_modules"]
        for service in contract["forbidden_modules"]
        if graph.chain_exists(importer=source, imported=service, as_packages=True)
    )


def _sdk_imports_a_service(graph: grimp.ImportGraph) -> list[str]:
    return _forbidden_imports(graph, SDK_CONTRACT)


def test_no_package_imports_a_higher_one(graph: grimp.ImportGraph) -> None:
    assert _upward(graph) == []


@pytest.mark.parametrize("contract", FORBIDDEN, ids=[c["name"] for c in FORBIDDEN])
def test_no_forbidden_import(graph: grimp.ImportGraph, contract: dict) -> None:
    assert _forbidden_imports(graph, contract) == []


def test_every_package_of_cove_has_a_layer(graph: grimp.ImportGraph) -> None:
    placed = {name for layer in LAYERS for name in layer.module_tails}
    top = graph.find_children("cove") - {"cove.__main__", "cove.migrations"}
    assert top - placed == set()


def test_an_upward_import_is_caught(graph: grimp.ImportGraph) -> None:
    # The deletion cascade's old shape: accounts importing the capabilities it deleted rows of.
    graph.add_import(importer="cove.accounts.deletion", imported="cove.consent.storage")
    graph.add_import(importer="cove.client.core", imported="cove.business.gateway.cloud")
    try:
        assert any(line.startswith("cove.accounts -> cove.consent") for line in _upward(graph))
        assert "cove.client -> cove.business" in _sdk_imports_a_service(graph)
    finally:
        graph.remove_import(importer="cove.accounts.deletion", imported="cove.consent.storage")
        graph.remove_import(importer="cove.client.core", imported="cove.business.gateway.cloud")
    assert _upward(graph) == []
