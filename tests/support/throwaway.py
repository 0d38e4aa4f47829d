"""Upstream packages that conflict with our pins, installed apart from the venv for a test.

Each set is pip-installed once into its own folder under ``$CHURN_TEST_CACHE`` (default
``<tmp>/churn-kfp-test-cache``) and reused; tests run it in a separate interpreter with that
folder on ``PYTHONPATH``. A failed install fails the test with pip's message.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import pytest


def installed_apart(name: str, requirements: Sequence[str], *, no_deps: bool = False) -> Path:
    """Returns a folder holding ``requirements`` (installed there on first use)."""
    root = Path(
        os.environ.get("CHURN_TEST_CACHE") or Path(tempfile.gettempdir()) / "churn-kfp-test-cache"
    )
    target = root / name
    if (target / ".complete").is_file():
        return target
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=root))
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        + (["--no-deps"] if no_deps else [])
        + ["--target", str(staging), *requirements],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if done.returncode != 0:
        shutil.rmtree(staging, ignore_errors=True)
        pytest.fail(f"pip could not install {' '.join(requirements)}:\n{done.stderr[-3000:]}")
    (staging / ".complete").write_text(" ".join(requirements))
    try:
        staging.rename(target)
    except OSError:  # another run finished first: use theirs
        shutil.rmtree(staging, ignore_errors=True)
    return target
