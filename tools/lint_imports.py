"""Run import-linter on the package as the wheel installs it.

``lint-imports`` run in the checkout cannot see ``churn_kfp.components`` and
``churn_kfp.pipelines``: the editable install maps them onto ``components/`` and
``pipelines/`` with a setuptools import hook that grimp does not follow. This script copies
the installed modules into a temporary folder with the wheel's layout
(:func:`tools.wheel_layout.assemble`), runs import-linter's CLI on it with the project's
contracts, removes the folder and exits with import-linter's exit code.

Usage: ``python tools/lint_imports.py [lint-imports options, e.g. --contract ID --verbose]``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make ``tools`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tools.wheel_layout import REPO, assemble

__all__ = ["lint_imports", "main"]

_CLI = "from importlinter.cli import lint_imports_command; lint_imports_command()"


def lint_imports(
    args: Sequence[str] = (),
    project: Path = REPO,
    config: Path | None = None,
    extra_modules: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Assembles the installed layout in a temporary folder and lints its imports.

    Args:
        args: Extra ``lint-imports`` options (``--contract ID``, ``--verbose``...).
        project: Folder holding ``pyproject.toml`` and the sources.
        config: The contracts; default the project's ``pyproject.toml``.
        extra_modules: Files to add to the assembled layout before linting, as a path
            relative to it (``"churn_kfp/components/bad.py"``) mapped to the source text;
            lets a test show that a contract breaks.

    Returns:
        The finished ``lint-imports`` process, its output captured (stdout and stderr
        merged).
    """
    config = config or project / "pyproject.toml"
    with tempfile.TemporaryDirectory(prefix="lint-imports-") as tmp:
        layout = assemble(Path(tmp), project)
        for relative, text in (extra_modules or {}).items():
            (layout / relative).write_text(text)
        # The layout first, so it shadows the editable install; the checkout for the custom
        # contract types in tools/.
        path = [str(layout), str(REPO)]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(path), "NO_COLOR": "1", "COLUMNS": "120"}
        command = [sys.executable, "-c", _CLI, str(config), "--no-cache", "--no-logo", *args]
        return subprocess.run(
            command,
            cwd=layout,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            check=False,
        )


def main(argv: Sequence[str] | None = None) -> int:
    """Lints the imports, prints import-linter's report and returns its exit code."""
    result = lint_imports(sys.argv[1:] if argv is None else argv)
    print(result.stdout, end="")
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
