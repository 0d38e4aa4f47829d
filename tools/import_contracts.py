"""A custom import-linter contract: some modules import certain libraries only inside functions.

KFP imports a component's module to compile a pipeline, and ``churn --help`` imports the
pipelines: a heavy library imported at module level would load on every one of those
imports. A plain ``forbidden`` contract cannot express "inside the component body only",
because grimp records imports inside functions too. This contract reads each import's
line number from the graph and the module's source, and counts only the imports that run
when the module is imported: those outside any function (class bodies and ``if`` blocks
included). It follows those imports through the project's own modules, and through the
parent packages every import runs, so a helper that imports pandas at module level breaks
the contract of the component that imports the helper.

Register and use it in ``pyproject.toml``::

    [tool.importlinter]
    contract_types = ["no_module_level_import: tools.import_contracts.NoModuleLevelImport"]

    [[tool.importlinter.contracts]]
    name = "..."
    type = "no_module_level_import"
    source_modules = ["churn_kfp.components"]     # packages: every module below them
    forbidden_modules = ["pandas", "sklearn"]     # imported only inside functions
"""

from __future__ import annotations

import ast
import importlib.util
from collections import deque
from functools import cache
from pathlib import Path
from typing import Any, cast

from grimp import ImportGraph
from importlinter import Contract, ContractCheck, fields, output
from importlinter.domain.imports import Module

__all__ = ["NoModuleLevelImport", "runtime_import_lines"]


def runtime_import_lines(source: str) -> set[int]:
    """Line numbers of the import statements that run when the module is imported.

    Every ``import`` / ``from ... import`` outside a function or lambda body (class bodies,
    ``if``/``try`` blocks, ``TYPE_CHECKING`` guards included: the check stays simple and
    strict). A statement spanning lines is known by its first line, as grimp reports it.
    """
    lines: set[int] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                continue
            if isinstance(child, ast.Import | ast.ImportFrom):
                lines.add(child.lineno)
            visit(child)

    visit(ast.parse(source))
    return lines


@cache
def _package_folder(root_package: str) -> Path:
    spec = importlib.util.find_spec(root_package)
    if spec is None or not spec.submodule_search_locations:
        raise ValueError(f"cannot locate the package {root_package!r}")
    return Path(next(iter(spec.submodule_search_locations)))


def _module_source(module: str) -> str:
    root, *rest = module.split(".")
    base = _package_folder(root).joinpath(*rest)
    for path in (base / "__init__.py", base.with_suffix(".py")):
        if path.is_file():
            return path.read_text(encoding="utf-8")
    raise ValueError(f"no source file for the module {module!r} (looked for {base}[.py])")


class NoModuleLevelImport(Contract):
    """Modules under ``source_modules`` import ``forbidden_modules`` only inside functions.

    Configuration options:
        - source_modules: Packages whose modules (the packages themselves included) are
          checked.
        - forbidden_modules: Libraries (top-level names) those modules may import only
          inside a function, directly or through project modules they import.
    """

    type_name = "no_module_level_import"

    source_modules = fields.SetField(subfield=fields.ModuleField())
    forbidden_modules = fields.SetField(subfield=fields.ModuleField())

    def check(self, graph: ImportGraph, verbose: bool) -> ContractCheck:
        """Finds, for each source module, the shortest import-time chain to a forbidden one."""
        # import-linter replaces each field by its parsed value on the instance.
        packages = cast("set[Module]", self.source_modules)
        forbidden = {module.name for module in cast("set[Module]", self.forbidden_modules)}
        runtime_lines: dict[str, set[int]] = {}

        def is_forbidden(name: str) -> bool:
            return any(name == f or name.startswith(f + ".") for f in forbidden)

        def runs_at_import(importer: str, imported: str) -> list[int | None]:
            """Lines of the imports of ``imported`` that run when ``importer`` is imported."""
            if importer not in runtime_lines:
                runtime_lines[importer] = runtime_import_lines(_module_source(importer))
            details = graph.get_import_details(importer=importer, imported=imported)
            if not details:  # a graph built without details: assume the worst
                return [None]
            return [
                d["line_number"]
                for d in details
                if d["line_number"] is None or d["line_number"] in runtime_lines[importer]
            ]

        def import_time_edges(module: str) -> list[tuple[str, list[int | None]]]:
            edges: list[tuple[str, list[int | None]]] = []
            parent = module.rpartition(".")[0]
            if parent and parent in graph.modules:
                edges.append((parent, []))  # importing a module runs its package first
            for imported in sorted(graph.find_modules_directly_imported_by(module)):
                lines = runs_at_import(module, imported)
                if lines:
                    edges.append((imported, lines))
            return edges

        sources: set[str] = set()
        for package in packages:
            if package.name not in graph.modules:
                raise ValueError(f"Module '{package.name}' does not exist.")
            sources |= {package.name, *graph.find_descendants(package.name)}

        violations = []
        for source in sorted(sources):
            output.verbose_print(verbose, f"Checking the import-time imports of {source}...")
            # Breadth first: the chain reported for each library is a shortest one.
            came_from: dict[str, tuple[str, list[int | None]] | None] = {source: None}
            queue = deque([source])
            found: dict[str, list[dict[str, Any]]] = {}
            while queue:
                module = queue.popleft()
                for imported, lines in import_time_edges(module):
                    if imported in came_from:
                        continue
                    came_from[imported] = (module, lines)
                    if is_forbidden(imported):
                        found[imported] = self._chain(came_from, imported)
                    elif not graph.is_module_squashed(imported):
                        queue.append(imported)
            if found:
                violations.append({"module": source, "chains": [found[k] for k in sorted(found)]})
        return ContractCheck(kept=not violations, metadata={"violations": violations})

    @staticmethod
    def _chain(
        came_from: dict[str, tuple[str, list[int | None]] | None], last: str
    ) -> list[dict[str, Any]]:
        links = []
        module = last
        while (step := came_from[module]) is not None:
            importer, lines = step
            links.append({"importer": importer, "imported": module, "lines": lines})
            module = importer
        return links[::-1]

    def render_broken_contract(self, check: ContractCheck) -> None:
        """Prints each offending module with its import chain and line numbers."""
        for violation in check.metadata["violations"]:
            output.print_error(
                f"{violation['module']} imports at module level (move the import into the "
                "function that needs it):"
            )
            output.new_line()
            for chain in violation["chains"]:
                first = True
                for link in chain:
                    where = ", ".join(f"l.{n}" for n in link["lines"] if n is not None)
                    where = where or "package __init__, runs first"
                    text = f"{link['importer']} -> {link['imported']} ({where})"
                    if first:
                        output.print_error(f"-   {text}", bold=False)
                        first = False
                    else:
                        output.indent_cursor()
                        output.print_error(text, bold=False)
                output.new_line()
