"""The layer order of ``gateway.layers`` holds for every import in ``gateway/``, and no
package imports itself back through another (DEVELOPERS.md: lower layers never import
higher ones).

Imports are read from the source (``ast``), so an import inside a function, where a module
defers one to start faster, counts as much as one at the top.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.layers import LAYERS, layer_of

GATEWAY = Path(__file__).resolve().parents[1] / "gateway"


def _module(path: Path) -> str:
    parts = path.relative_to(GATEWAY.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> Iterator[str]:
    """The gateway modules a file imports (``from gateway import x`` names ``gateway.x``)."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "gateway":
                yield from (f"gateway.{alias.name}" for alias in node.names)
            elif node.module.startswith("gateway."):
                yield node.module
        elif isinstance(node, ast.Import):
            yield from (a.name for a in node.names if a.name.startswith("gateway."))


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = defaultdict(set)
    for path in sorted(GATEWAY.rglob("*.py")):
        module = _module(path)
        if module == "gateway":
            continue
        graph[module] |= {target for target in _imports(path)
                          if target not in ("gateway.__version__",)}
    return graph


GRAPH = _graph()


def test_every_module_has_a_layer() -> None:
    unplaced = []
    for module in GRAPH:
        try:
            layer_of(module)
        except KeyError:
            unplaced.append(module)
    assert not unplaced, f"place these in gateway.layers.LAYERS: {unplaced}"


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_no_module_imports_a_higher_layer(module: str) -> None:
    own = layer_of(module)
    upward = sorted(
        f"{target} ({LAYERS[layer_of(target)][0]})"
        for target in GRAPH[module] if layer_of(target) > own
    )
    assert not upward, f"{module} ({LAYERS[own][0]}) imports a higher layer: {upward}"


def _package(module: str) -> str:
    """The unit a cycle is looked for between: a subpackage of ``gateway``, or a top-level
    module on its own."""
    return ".".join(module.split(".")[:2])


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Every cycle a depth-first walk meets, each as the path that closes it."""
    cycles: list[list[str]] = []
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> None:
        if node in path:
            cycles.append([*path[path.index(node):], node])
            return
        if node in done:
            return
        for nxt in sorted(edges.get(node, ())):
            visit(nxt, [*path, node])
        done.add(node)

    for start in sorted(edges):
        visit(start, [])
    return cycles


def test_no_import_cycle_between_packages() -> None:
    edges: dict[str, set[str]] = defaultdict(set)
    for module, targets in GRAPH.items():
        for target in targets:
            if _package(target) != _package(module):
                edges[_package(module)].add(_package(target))
    cycles = _cycles(edges)
    assert not cycles, "import cycles between packages: " + "; ".join(
        " -> ".join(cycle) for cycle in cycles)


def test_the_checks_find_an_upward_import() -> None:
    """The check itself: storage importing the HTTP layer would be caught."""
    assert layer_of("gateway.http.routes.messages") > layer_of("gateway.storage.sqlite")
    assert layer_of("gateway.services.policy") > layer_of("gateway.pipeline.policy.evaluate")
    assert _cycles({"gateway.storage": {"gateway.services"},
                    "gateway.services": {"gateway.storage"}}) == [
        ["gateway.services", "gateway.storage", "gateway.services"]]
