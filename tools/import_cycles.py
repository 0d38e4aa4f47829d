"""Find import cycles between a project's modules, counting every import statement.

import-linter's graph has no "no cycles at all" contract, and a cycle hidden in a function
body still ties two modules together; this check reads every ``import`` with :mod:`ast`
(inside functions, ``if TYPE_CHECKING`` blocks, everywhere) and reports each cycle as a
shortest loop of imports with their line numbers.

Usage: ``python -m tools.import_cycles`` (the installed layout of this project); exits 1
when a cycle exists.
"""

from __future__ import annotations

import ast
import sys
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ImportEdge", "find_cycles", "format_cycle", "import_graph", "package_modules"]


@dataclass(frozen=True)
class ImportEdge:
    """One module importing another, at a line of the importer."""

    importer: str
    imported: str
    line: int


def package_modules(roots: Mapping[str, Path]) -> dict[str, Path]:
    """Maps the modules under each root folder to their files (packages by ``__init__``).

    Args:
        roots: Package name to its folder, e.g. ``{"mypkg": Path("src/mypkg")}``;
            subfolders are walked.
    """
    modules = {}
    for package, folder in roots.items():
        for path in sorted(folder.rglob("*.py")):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join([package, *parts])] = path
    return modules


def _resolve(name: str, modules: Mapping[str, Path]) -> str | None:
    """The module ``name`` lives in: itself, or the nearest known parent package."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def _imports_of(module: str, path: Path, modules: Mapping[str, Path]) -> dict[str, int]:
    """The modules ``module`` imports, each with the first line importing it."""
    is_package = path.name == "__init__.py"
    targets: list[tuple[str | None, int]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets += [(_resolve(alias.name, modules), node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module.split(".") if is_package else module.split(".")[:-1]
                package = package[: len(package) - node.level + 1]
                base = ".".join([*package, base] if base else package)
            for alias in node.names:
                full = f"{base}.{alias.name}"
                targets.append((full if full in modules else _resolve(base, modules), node.lineno))
    edges: dict[str, int] = {}
    for target, line in targets:
        if target and target != module:
            edges[target] = min(line, edges.get(target, line))
    return edges


def import_graph(modules: Mapping[str, Path]) -> dict[str, dict[str, int]]:
    """Every import between the given modules: importer -> {imported: first line}.

    ``from pkg import name`` points at ``pkg.name`` when that is a module, else at ``pkg``.
    Relative imports are resolved; imports of anything outside ``modules`` are dropped.
    """
    return {module: _imports_of(module, path, modules) for module, path in modules.items()}


def _strongly_connected(graph: Mapping[str, Mapping[str, int]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative; returns the components of more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next((c for c in children if c in graph), None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    components.append(sorted(component))
    return components


def _shortest_loop(graph: Mapping[str, Mapping[str, int]], members: list[str]) -> list[str]:
    """A shortest import loop through the first member, staying inside the component."""
    start, inside = members[0], set(members)
    came_from: dict[str, str] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for child in sorted(graph[node]):
            if child == start:
                loop = [node]
                while loop[-1] != start:
                    loop.append(came_from[loop[-1]])
                return [*loop[::-1], start]
            if child in inside and child not in came_from:
                came_from[child] = node
                queue.append(child)
    raise AssertionError(f"{members} is not a cycle")


def find_cycles(modules: Mapping[str, Path]) -> list[list[ImportEdge]]:
    """One shortest loop of imports per group of modules that import each other.

    Returns:
        Each cycle as the imports that close it (the last edge leads back to the first
        importer); empty when the import graph has no cycle.
    """
    graph = import_graph(modules)
    cycles = []
    for members in _strongly_connected(graph):
        loop = _shortest_loop(graph, members)
        cycles.append([ImportEdge(a, b, graph[a][b]) for a, b in zip(loop, loop[1:], strict=False)])
    return cycles


def format_cycle(cycle: list[ImportEdge], modules: Mapping[str, Path]) -> str:
    """The cycle as one line per import: ``importer -> imported (file:line)``."""

    def shown(path: Path) -> Path:
        return path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path

    return "\n".join(
        f"  {edge.importer} -> {edge.imported} ({shown(modules[edge.importer])}:{edge.line})"
        for edge in cycle
    )


def main() -> int:
    """Prints the cycles of the installed layout; returns 1 when there is one."""
    from tools.wheel_layout import module_files

    modules = module_files()
    cycles = find_cycles(modules)
    for cycle in cycles:
        print("import cycle:\n" + format_cycle(cycle, modules))
    print(f"{len(cycles)} import cycle(s) among {len(modules)} modules")
    return 1 if cycles else 0


if __name__ == "__main__":
    sys.exit(main())
