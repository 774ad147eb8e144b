"""The tree's rules, read from the imports (docs/architecture.md): three front ends that never
import each other, a core that imports none of them, a runner that imports nothing of the WM,
and no import cycle among modules."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(30)

REPO = Path(__file__).resolve().parent.parent
FRONT_ENDS = ("finecode_wm.lsp", "finecode_wm.mcp", "finecode_wm.cli")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for package in ("finecode_wm", "finecode_er")
            for p in sorted((REPO / package).rglob("*.py"))}


def _imports(name: str, path: Path, *, top_level_only: bool) -> set[str]:
    """The modules `name` imports (resolved relative imports); with `top_level_only`, only those
    run when the module is imported (not inside functions, not under TYPE_CHECKING)."""
    tree = ast.parse(path.read_text(), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names}
    return found


def _own(found: set[str], modules: dict[str, Path]) -> set[str]:
    return {m for m in found if m in modules}


def _front_end(module: str) -> str | None:
    return next((f for f in FRONT_ENDS if module == f or module.startswith(f + ".")), None)


def test_front_ends_import_no_other_front_end_and_the_core_imports_none() -> None:
    modules = _modules()
    wrong = []
    for name, path in modules.items():
        if name in ("finecode_wm.main", "finecode_wm.__main__"):
            continue  # the command line opens the door it names
        mine = _front_end(name)
        for imported in _own(_imports(name, path, top_level_only=False), modules):
            theirs = _front_end(imported)
            if theirs is not None and theirs != mine:
                wrong.append(f"{name} imports {imported}")
    assert wrong == []


def test_the_runner_imports_nothing_of_the_workspace_manager() -> None:
    modules = _modules()
    wrong = [f"{name} imports {imported}" for name, path in modules.items()
             if name.startswith("finecode_er")
             for imported in _imports(name, path, top_level_only=False)
             if imported.startswith("finecode_wm")]
    assert wrong == []


def test_no_import_cycles() -> None:
    modules = _modules()
    graph = {name: _own(_imports(name, path, top_level_only=True), modules) - {name}
             for name, path in modules.items()}
    for name in graph:  # a package's own __init__ is imported first by its modules: not an edge
        graph[name] = {m for m in graph[name] if not name.startswith(m + ".")}
    cycles: list[list[str]] = []
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append([*trail[trail.index(nxt):], nxt])
            elif nxt not in state:
                visit(nxt, [*trail, nxt])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert cycles == []


def test_the_rules_see_imports() -> None:
    """The checks above read real imports: the command line is found opening every door."""
    modules = _modules()
    opened = _own(_imports("finecode_wm.main", modules["finecode_wm.main"],
                           top_level_only=False), modules)
    assert {"finecode_wm.lsp.server", "finecode_wm.mcp.server",
            "finecode_wm.cli.commands"} <= opened
