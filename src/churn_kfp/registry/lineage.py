"""Data lineage: the tags recorded on every registered model version, and read back.

:func:`lineage_tags` builds them at registration; :func:`covered_month` reads from them the
last month a version's training data covered (where the retraining loop starts).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from churn_kfp.core.columns import CUTOFF, SPLIT

__all__ = ["covered_month", "data_hash", "git_commit", "lineage_tags"]


def data_hash(frame: pd.DataFrame) -> str:
    """Returns a SHA-256 of a frame's content (row order and column names included)."""
    digest = hashlib.sha256(",".join(map(str, frame.columns)).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()


def git_commit() -> str:
    """Returns the source commit: ``CHURN_GIT_COMMIT`` (set in images) or ``git rev-parse``."""
    if os.environ.get("CHURN_GIT_COMMIT"):
        return os.environ["CHURN_GIT_COMMIT"]
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def lineage_tags(
    table: pd.DataFrame,
    *,
    plan: dict,
    pipeline_name: str,
    pipeline_run_id: str,
    quality_report_path: str | None = None,
) -> dict[str, str]:
    """Builds the lineage tags of a model version (all values are strings, as MLflow wants).

    Args:
        table: The labelled training/validation/test table the model came from.
        plan: The cutoff plan (``CutoffPlan.to_dict()``).
        pipeline_name: Name of the pipeline that trained the model.
        pipeline_run_id: KFP run id (or the local run's id).
        quality_report_path: The ingestion quality report, for the raw data range.
    """
    tags = {
        "pipeline": pipeline_name,
        "pipeline_run_id": pipeline_run_id,
        "git_commit": git_commit(),
        "data_hash": data_hash(table),
        "rows": str(len(table)),
        "cutoffs": ",".join(sorted({pd.Timestamp(c).date().isoformat() for c in table[CUTOFF]})),
        "test_cutoff": str(plan.get("test", "")),
        "horizon_days": str(plan.get("horizon_days", "")),
    }
    for split, count in table[SPLIT].value_counts().sort_index().items():
        tags[f"rows_{split}"] = str(count)
    if quality_report_path and Path(quality_report_path).is_file():
        report = json.loads(Path(quality_report_path).read_text())
        tx = report.get("transactions", {}) if isinstance(report, dict) else {}
        date_range = tx.get("date_range") or []
        if isinstance(date_range, dict):
            date_range = [date_range.get("start"), date_range.get("end")]
        if len(date_range) == 2:
            tags["data_start"], tags["data_end"] = (str(v) for v in date_range)
        if "quality_score" in report:
            tags["quality_score"] = f"{float(report['quality_score']):.4f}"
    return tags


def covered_month(tags: Mapping[str, str] | None) -> str | None:
    """The last month a model version's training data covered, from its lineage tags.

    Prefers ``data_end``; otherwise the data must have reached the end of the test cutoff's
    label window (``test_cutoff + horizon_days - 1 day``).

    Args:
        tags: Model-version tags (see :func:`lineage_tags`).

    Returns:
        ``YYYY-MM``, or ``None`` when the tags do not say.
    """
    tags = tags or {}
    end = tags.get("data_end")
    if end:
        try:
            return str(pd.Timestamp(end).to_period("M"))
        except ValueError:
            pass
    test, horizon = tags.get("test_cutoff"), tags.get("horizon_days")
    if test and horizon:
        try:
            last = pd.Timestamp(test) + pd.Timedelta(days=int(float(horizon)) - 1)
        except ValueError:
            return None
        return str(last.to_period("M"))
    return None
