"""What a local run leaves behind: ``last-run.json`` and the ``runs/`` history.

Every run, training or retraining, succeeded, skipped, failed or interrupted, ends in
:func:`write_last_run`, so ``$CHURN_HOME/last-run.json`` always describes the latest run and
``$CHURN_HOME/runs/`` keeps the summary of every run that finished.
"""

from __future__ import annotations

import json
from typing import Any

from churn_kfp.core.config import Settings

__all__ = ["record_failure", "record_interruption", "rounded", "write_last_run"]


def rounded(value: Any) -> Any:
    """A metric as summaries show it: floats to 4 decimals, anything else unchanged."""
    return round(value, 4) if isinstance(value, float) else value


def write_last_run(
    summary: dict[str, Any], settings: Settings, history_id: str | None = None
) -> dict[str, Any]:
    """Writes ``summary`` to ``last-run.json`` (atomically) and returns it.

    Args:
        summary: The run summary; its ``pipeline`` names the history file.
        settings: Where local state lives.
        history_id: With an id (pipeline run id, run tag), the summary is also kept as
            ``runs/<pipeline>-<history_id>.json``, so a later run loses nothing.
    """
    settings.home.mkdir(parents=True, exist_ok=True)
    text = json.dumps(summary, indent=2, default=str)
    if history_id is not None:
        runs = settings.home / "runs"
        runs.mkdir(parents=True, exist_ok=True)
        (runs / f"{summary.get('pipeline')}-{history_id}.json").write_text(text)
    tmp = settings.last_run_path.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.replace(settings.last_run_path)
    return summary


def record_failure(settings: Settings, pipeline: str, exc: Exception) -> None:
    """Writes a failed status to ``last-run.json`` (earlier summaries stay under ``runs/``)."""
    failure = {
        "status": "failed",
        "pipeline": pipeline,
        "failed_step": getattr(exc, "task", None),
        "error": getattr(exc, "cause", None) or str(exc),
    }
    write_last_run(failure, settings)


def record_interruption(settings: Settings, pipeline: str, exc: BaseException) -> None:
    """Writes an interrupted status to ``last-run.json`` (Ctrl-C, or SIGTERM turned into one)."""
    interruption = {
        "status": "interrupted",
        "pipeline": pipeline,
        "error": f"interrupted ({exc or 'Ctrl-C'}) before the run finished",
    }
    write_last_run(interruption, settings)
