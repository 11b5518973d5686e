"""The package's layers, read from the source: which package may import which at module level,
and no import cycle at all.

Layers, bottom up: the core (``realtime_widget._*``), ``media`` (conditions: the ``conditions``
extra), ``experiments`` (the grid), ``evaluate`` (judges, callers: the ``evaluate`` extra). A
package imports only those below it when it is imported; the core reaches up only inside a
function, when the user asks for that feature (``run_script``, ``say(condition=)``,
``model_endpoint()``). The emulator stands apart: it may use the core's protocol modules, and
nothing but the top-level facade imports it. The facades (``__init__``, ``types``) re-export.
"""

from __future__ import annotations

import ast
import functools
import json
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "realtime_widget"
LAYER = {"core": 0, "media": 1, "experiments": 2, "evaluate": 3}
FACADES = {"realtime_widget", "realtime_widget.types"}


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_of(module: str) -> str:
    parts = module.split(".")
    if len(parts) > 1 and parts[1] in {"media", "experiments", "evaluate", "emulator"}:
        return parts[1]
    return "core"


def module_level_imports(path: Path) -> set[str]:
    """The realtime_widget modules ``path`` imports when it is imported (not those under
    ``if TYPE_CHECKING:`` or inside a function)."""
    me = module_name(path)
    is_package = path.name == "__init__.py"
    tree = ast.parse(path.read_text(), str(path))
    found: set[str] = set()

    def visit(nodes: list[ast.stmt]) -> None:
        for node in nodes:
            if isinstance(node, ast.If):
                test = ast.unparse(node.test)
                if "TYPE_CHECKING" not in test:
                    visit(node.body)
                visit(node.orelse)
            elif isinstance(node, ast.Try):
                visit(node.body)
                for handler in node.handlers:
                    visit(handler.body)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = me.split(".") if is_package else me.split(".")[:-1]
                    base = base[: len(base) - (node.level - 1)]
                    target = ".".join([*base, *([node.module] if node.module else [])])
                else:
                    target = node.module or ""
                if target.startswith("realtime_widget"):
                    # a package's own modules always run inside its __init__: an edge to an
                    # enclosing package says nothing
                    if not (me + ".").startswith(target + "."):
                        found.add(target)
                    for alias in node.names:  # "from . import _storage" imports a module
                        candidate = f"{target}.{alias.name}"
                        if module_path(candidate) is not None:
                            found.add(candidate)
            elif isinstance(node, ast.Import):
                found.update(a.name for a in node.names if a.name.startswith("realtime_widget"))

    visit(tree.body)
    found.discard(me)
    return found


def module_path(module: str) -> Path | None:
    rel = Path(*module.split(".")[1:])
    for candidate in (SRC / rel / "__init__.py", (SRC / rel).with_suffix(".py")):
        if candidate.is_file():
            return candidate
    return None


def read_graph() -> dict[str, set[str]]:
    return {module_name(p): module_level_imports(p) for p in SRC.rglob("*.py")}


@functools.cache
def graph() -> dict[str, set[str]]:
    """Read in a child process: in a long pytest run CPython 3.11's ast.parse can raise
    "AST constructor recursion depth mismatch" (its C recursion counter, left off by an earlier
    test), which says nothing about the sources."""
    out = subprocess.run(
        [sys.executable, __file__], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    return {k: set(v) for k, v in json.loads(out).items()}


def test_the_graph_is_read() -> None:
    g = graph()
    assert "realtime_widget.experiments._runs" in g["realtime_widget.experiments._runner"]
    assert "realtime_widget._core" in g["realtime_widget._widget"]
    assert not any(m.startswith("realtime_widget.experiments") for m in g["realtime_widget._core"])


@pytest.mark.parametrize("layer", ["core", "media", "experiments", "evaluate", "emulator"])
def test_a_package_imports_only_the_layers_below_it(layer: str) -> None:
    wrong = []
    for module, imports in graph().items():
        if module in FACADES or package_of(module) != layer:
            continue
        for target in imports:
            there = package_of(target)
            if target == "realtime_widget" or there == layer:
                continue
            if layer == "emulator" or there == "emulator":
                allowed = layer == "emulator" and there == "core"
            else:
                allowed = LAYER[there] < LAYER[layer]
            if not allowed:
                wrong.append(f"{module} -> {target}")
    assert not wrong, "imports against the layers:\n" + "\n".join(sorted(wrong))


def test_no_import_cycle_between_modules() -> None:
    g = graph()
    # Tarjan's strongly connected components: a component of two or more modules is a cycle
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def strongconnect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in g.get(v, ()):
            if w not in g:
                continue
            if w not in index:
                strongconnect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(g):
        if v not in index:
            strongconnect(v)
    assert not cycles, cycles


if __name__ == "__main__":
    print(json.dumps({k: sorted(v) for k, v in read_graph().items()}))
