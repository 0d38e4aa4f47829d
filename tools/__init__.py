"""Developer tools that check the architecture; they are not part of the installed package.

- :mod:`tools.wheel_layout`: the modules the wheel installs, read from ``pyproject.toml``.
- :mod:`tools.lint_imports`: runs import-linter on that layout (``make lint``).
- :mod:`tools.import_contracts`: the custom import-linter contract for light components.
- :mod:`tools.import_cycles`: finds import cycles, counting imports inside functions.
"""

__all__ = ["import_contracts", "import_cycles", "lint_imports", "wheel_layout"]
