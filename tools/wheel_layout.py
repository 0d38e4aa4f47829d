"""The package layout the wheel installs, read from ``pyproject.toml``.

``components/`` and ``pipelines/`` install as ``churn_kfp.components`` and
``churn_kfp.pipelines`` through ``[tool.setuptools.package-dir]``; tools that analyse the
package as Python sees it (import-linter, the cycle check) need that layout, not the source
tree's.
"""

from __future__ import annotations

import shutil
import tomllib
from pathlib import Path

__all__ = ["REPO", "assemble", "module_files", "package_dirs"]

REPO = Path(__file__).resolve().parents[1]


def _setuptools_config(project: Path) -> dict:
    with open(project / "pyproject.toml", "rb") as handle:
        return tomllib.load(handle).get("tool", {}).get("setuptools", {})


def package_dirs(project: Path = REPO) -> dict[str, Path]:
    """Maps every package the wheel installs to its source folder.

    Follows setuptools' rule: a package's folder is the ``package-dir`` entry of its
    longest listed prefix, plus the remaining name parts (the project root when no prefix
    is listed).

    Args:
        project: Folder holding ``pyproject.toml``.

    Raises:
        ValueError: ``[tool.setuptools] packages`` is not an explicit list (package
            discovery is not supported here).
    """
    config = _setuptools_config(project)
    packages = config.get("packages")
    if not isinstance(packages, list):
        raise ValueError("[tool.setuptools] packages must list the packages explicitly")
    mapping: dict[str, str] = config.get("package-dir", {})
    dirs = {}
    for package in packages:
        parts = package.split(".")
        for cut in range(len(parts), -1, -1):
            prefix = ".".join(parts[:cut])
            if prefix in mapping or cut == 0:
                base = project / mapping.get(prefix, "")
                dirs[package] = base.joinpath(*parts[cut:])
                break
    return dirs


def module_files(project: Path = REPO) -> dict[str, Path]:
    """Maps every installed module (packages by their ``__init__``) to its source file."""
    modules = {}
    for package, folder in package_dirs(project).items():
        for path in sorted(folder.glob("*.py")):
            name = package if path.stem == "__init__" else f"{package}.{path.stem}"
            modules[name] = path
    return modules


def assemble(destination: Path, project: Path = REPO) -> Path:
    """Copies the installed modules into ``destination`` as the wheel lays them out.

    Args:
        destination: An existing folder; each module lands at its import path below it.
        project: Folder holding ``pyproject.toml``.

    Returns:
        ``destination``, ready to be put on ``PYTHONPATH``.
    """
    for name, source in module_files(project).items():
        parts = name.split(".")
        if source.stem == "__init__":
            target = destination.joinpath(*parts, "__init__.py")
        else:
            target = destination.joinpath(*parts[:-1], source.name)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
    return destination
