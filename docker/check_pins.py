"""Fails the image build when an installed distribution is not pinned by requirements.lock.

Run inside the image's virtualenv after installing: ``python check_pins.py requirements.lock``.
Every installed distribution (except the installer's own tools and the project itself) must
appear in the lock with the same version, so the image holds exactly what CI tested.
"""

from __future__ import annotations

import re
import sys
from importlib import metadata
from pathlib import Path

EXEMPT = frozenset({"pip", "setuptools", "wheel", "churn-kfp"})


def normalize(name: str) -> str:
    """PEP 503 name normalisation (``Foo_Bar.baz`` -> ``foo-bar-baz``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def read_lock(text: str) -> dict[str, str]:
    """Parses ``name==version`` lines (comments, blanks and markers ignored)."""
    pins: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].split(";", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        name, sep, version = line.partition("==")
        if sep:
            pins[normalize(name.split("[", 1)[0])] = version.strip()
    return pins


def unpinned(installed: dict[str, str], pins: dict[str, str]) -> list[str]:
    """Describes each installed distribution the lock does not pin to its version."""
    problems = []
    for name, version in sorted(installed.items()):
        if name in EXEMPT:
            continue
        if name not in pins:
            problems.append(f"{name}=={version} is installed but not in the lock")
        elif pins[name] != version:
            problems.append(f"{name}=={version} is installed but the lock pins {pins[name]}")
    return problems


def main(argv: list[str]) -> int:
    """Compares the running environment with the lock file named in ``argv[1]``."""
    if len(argv) != 2:
        print("usage: check_pins.py requirements.lock", file=sys.stderr)
        return 2
    pins = read_lock(Path(argv[1]).read_text())
    installed = {normalize(d.metadata["Name"]): d.version for d in metadata.distributions()}
    problems = unpinned(installed, pins)
    for problem in problems:
        print(f"check_pins: {problem}", file=sys.stderr)
    if problems:
        print(
            "check_pins: add the packages to requirements.lock (and pyproject.toml)",
            file=sys.stderr,
        )
        return 1
    print(f"check_pins: {len(installed)} distributions, all pinned by {argv[1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
