"""The architecture, checked: no import cycle, contracts kept, small modules, honest packages.

Everything is checked on the package as the wheel installs it (``churn_kfp.*``, with
``components/`` and ``pipelines/`` as ``churn_kfp.components`` and ``churn_kfp.pipelines``),
read from ``pyproject.toml`` by :mod:`tools.wheel_layout`.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # tools/ is a checkout folder, not an installed package
    sys.path.append(str(REPO))

from tools.import_contracts import runtime_import_lines  # noqa: E402
from tools.import_cycles import ImportEdge, find_cycles, format_cycle, package_modules  # noqa: E402
from tools.lint_imports import lint_imports  # noqa: E402
from tools.wheel_layout import module_files, package_dirs  # noqa: E402

MAX_TOP_LEVEL_MODULES = 12
MAX_LINES = 800
ROOT = "churn_kfp"
MODULES = module_files(REPO)
PACKAGES = package_dirs(REPO)


# --------------------------------------------------------------------------- import cycles


def test_no_import_cycle_in_the_installed_package():
    cycles = find_cycles(MODULES)
    shown = "\n\n".join(format_cycle(cycle, MODULES) for cycle in cycles)
    if cycles:
        pytest.fail(f"{len(cycles)} import cycle(s) (imports inside functions count):\n{shown}")


def write_package(root: Path, files: dict[str, str]) -> Path:
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_cycle_check_finds_a_cycle_closed_inside_a_function(tmp_path):
    folder = write_package(
        tmp_path / "pkg",
        {
            "__init__.py": '"""A package."""\n',
            "a.py": "from pkg import b\n",
            "b.py": "import json\n\n\ndef late():\n    from .sub.c import value\n",
            "sub/__init__.py": "",
            "sub/c.py": "import os\nimport pkg.a\n",
            "d.py": "from pkg import a, b\n",  # imports into the cycle, not part of it
        },
    )
    modules = package_modules({"pkg": folder})

    cycles = find_cycles(modules)

    assert cycles == [
        [
            ImportEdge("pkg.a", "pkg.b", 1),
            ImportEdge("pkg.b", "pkg.sub.c", 5),
            ImportEdge("pkg.sub.c", "pkg.a", 2),
        ]
    ]
    shown = format_cycle(cycles[0], modules)
    assert "pkg.b -> pkg.sub.c" in shown and "b.py:5" in shown


def test_cycle_check_passes_an_acyclic_package(tmp_path):
    folder = write_package(
        tmp_path / "pkg",
        {
            "__init__.py": "",
            "a.py": "from . import b\nfrom .b import thing\n",
            "b.py": "def f():\n    import pkg.c\n",
            "c.py": "import json\n",
        },
    )
    assert find_cycles(package_modules({"pkg": folder})) == []


# --------------------------------------------------------------------------- import contracts


def test_import_contracts_are_kept():
    result = lint_imports()
    assert result.returncode == 0, result.stdout
    assert "2 kept, 0 broken" in result.stdout, result.stdout


def test_runtime_import_lines_are_those_outside_functions():
    source = (
        "import a\n"  # 1
        "if True:\n"  # 2
        "    import b\n"  # 3
        "class C:\n"  # 4
        "    from c import d\n"  # 5
        "    def method(self):\n"  # 6
        "        import e\n"  # 7
        "def f():\n"  # 8
        "    import g\n"  # 9
        "async def h():\n"  # 10
        "    from i import (\n"  # 11
        "        j,\n"  # 12
        "    )\n"  # 13
        "from k import (\n"  # 14
        "    m,\n"  # 15
        ")\n"  # 16
    )
    assert runtime_import_lines(source) == {1, 3, 5, 14}


def test_light_components_contract_breaks_on_a_module_level_heavy_import():
    result = lint_imports(
        ["--contract", "light-components"],
        extra_modules={
            f"{ROOT}/components/heavy_example.py": (
                '"""A component importing pandas at module level."""\n\n'
                "import pandas as pd\n\n\n"
                "def run():\n"
                "    import numpy\n"
            ),
            f"{ROOT}/components/heavy_helper.py": '"""A helper."""\n\nimport pyarrow\n',
            f"{ROOT}/components/uses_helper.py": (
                '"""Imports a helper that imports pyarrow."""\n\n'
                "from churn_kfp.components import heavy_helper\n"
            ),
            f"{ROOT}/components/light_example.py": (
                '"""Imports heavy libraries only in its body."""\n\n\n'
                "def run():\n"
                "    import pandas\n"
                "    from sklearn.metrics import f1_score\n"
            ),
        },
    )
    out = result.stdout
    assert result.returncode == 1, out
    assert "churn_kfp.components.heavy_example -> pandas (l.3)" in out, out
    assert "churn_kfp.components.uses_helper -> churn_kfp.components.heavy_helper (l.3)" in out
    assert "churn_kfp.components.heavy_helper -> pyarrow (l.3)" in out
    assert "-> numpy" not in out and "light_example" not in out, out
    assert "0 kept, 1 broken" in out


# --------------------------------------------------------------------------- layout and size


def test_every_package_on_disk_is_installed():
    """The image installs the wheel, so a folder missing from pyproject is missing there."""
    roots = {PACKAGES[name] for name in PACKAGES if "." not in name} | {
        PACKAGES[f"{ROOT}.components"],
        PACKAGES[f"{ROOT}.pipelines"],
    }
    folders = {path.parent for root in roots for path in root.rglob("*.py")}
    missing = sorted(str(f.relative_to(REPO)) for f in folders - set(PACKAGES.values()))
    if missing:
        pytest.fail(f"folders of Python files not in [tool.setuptools] packages: {missing}")


def test_at_most_12_modules_directly_under_churn_kfp():
    top_level = sorted(name for name in MODULES if name.count(".") == 1)
    assert len(top_level) <= MAX_TOP_LEVEL_MODULES, top_level


def test_no_python_file_longer_than_800_lines():
    roots = {PACKAGES[ROOT], PACKAGES[f"{ROOT}.components"], PACKAGES[f"{ROOT}.pipelines"]}
    lengths = {
        str(path.relative_to(REPO)): len(path.read_text().splitlines())
        for root in roots
        for path in root.rglob("*.py")
    }
    too_long = {path: n for path, n in sorted(lengths.items()) if n > MAX_LINES}
    if too_long:
        pytest.fail(f"files over {MAX_LINES} lines: {too_long}")


def test_every_component_module_has_its_test_file():
    components = [
        name.rpartition(".")[2]
        for name in MODULES
        if name.startswith(f"{ROOT}.components.") and not name.rpartition(".")[2].startswith("_")
    ]
    missing = [c for c in components if not (REPO / f"tests/components/test_{c}.py").is_file()]
    assert components and not missing, (
        f"components without tests/components/test_<name>.py: {missing}"
    )


# --------------------------------------------------------------------------- packages


@pytest.mark.parametrize("package", sorted(PACKAGES))
def test_package_has_a_docstring_and_lists_its_public_submodules(package):
    init = PACKAGES[package] / "__init__.py"
    tree = ast.parse(init.read_text())
    docstring = ast.get_docstring(tree) or ""
    last = package.rpartition(".")[2]
    if docstring.strip().rstrip(".").lower() in ("", last):
        pytest.fail(f"{init}: the docstring must say what the package owns")

    declared = [
        node.value
        for node in tree.body
        if isinstance(node, ast.Assign)
        and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets)
    ]
    if not declared:
        pytest.fail(f"{init}: no __all__")
    names = ast.literal_eval(declared[-1])
    public = sorted(
        name.rpartition(".")[2]
        for name in MODULES
        if name.rpartition(".")[0] == package and not name.rpartition(".")[2].startswith("_")
    )
    assert sorted(names) == public, f"{init}: __all__ must list the public submodules"

    imported = [
        node.module if isinstance(node, ast.ImportFrom) else alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    ]
    internal = [name for name in imported if name and name.split(".")[0] == ROOT]
    assert not internal, f"{init} imports {internal}: package __init__ files import nothing"
