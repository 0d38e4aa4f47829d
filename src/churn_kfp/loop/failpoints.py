"""Injected failures of the retraining steps, for the crash-recovery tests.

Each retraining component calls :func:`fail_if_requested` with its step name first; when the
environment variable :data:`FAIL_AT_ENV` names that step, it raises before any write.
"""

from __future__ import annotations

import os

__all__ = ["FAIL_AT_ENV", "fail_if_requested"]

FAIL_AT_ENV = "CHURN_FAIL_AT"
"""Test hook: a retraining step whose name equals this variable raises before any write."""


def fail_if_requested(step: str) -> None:
    """Raises when ``CHURN_FAIL_AT`` names this step (used by the crash-recovery tests).

    Args:
        step: The step's name (``check-new-data``, ``score-and-monitor``,
            ``decide-retraining``, ``finalize-period``).

    Raises:
        RuntimeError: The variable names this step.
    """
    if os.environ.get(FAIL_AT_ENV, "") == step:
        raise RuntimeError(f"{FAIL_AT_ENV}={step}: injected failure (test hook)")
