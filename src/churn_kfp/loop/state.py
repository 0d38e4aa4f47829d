"""The retraining loop's state store: its keys, JSON records, predictions and performance.

Everything lives in the landing zone under ``state/`` (a local folder or the same bucket on
S3, through :class:`~churn_kfp.data.storage.LandingZone`), so a laptop and a cluster keep it the
same way::

    state/ledger.json                                    # processed partitions (ledger.py)
    state/predictions/cutoff=2025-06-01/model=3.parquet   # one file per cutoff
    state/performance.parquet                            # delayed-label metrics, one row
                                                         #   per (cutoff, model_version)
    state/periods/2025-05.json                           # what the run for a period did
    state/alerts/2025-05.json                            # alerts raised for a period
    state/runs/<run tag>.json                            # outcome of one pipeline run
    state/last-skip.json                                 # the last run that found nothing

Every key is derived from the period or the cutoff, so a re-run overwrites what an earlier
(crashed) attempt may have written and nothing is ever duplicated. A period whose run
committed it is never redone silently, even when the ledger lost it
(:func:`refuse_reprocessing`). This module only reads
and writes; the monitor step and the run reports read the state, and
:mod:`churn_kfp.loop.finalize` alone writes it, at the end of a run.
"""

from __future__ import annotations

import io
import json
import math
import re
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from churn_kfp.core import columns
from churn_kfp.data.storage import LandingZone
from churn_kfp.loop.ledger import LEDGER_KEY, LedgerError
from churn_kfp.loop.periods import PeriodPlan, check_period, iso_date

__all__ = [
    "ALERTS_PREFIX",
    "BACKFILL",
    "HEADLINE",
    "LAST_SKIP_KEY",
    "MODEL_VERSION",
    "PERFORMANCE_COLUMNS",
    "PERFORMANCE_KEY",
    "PERIODS_PREFIX",
    "PREDICTION",
    "PREDICTIONS_PREFIX",
    "PREDICTION_COLUMNS",
    "PROBABILITY",
    "RUNS_PREFIX",
    "SCHEDULED",
    "SOURCE",
    "STATE_PREFIX",
    "THRESHOLD",
    "alerts_key",
    "committed_run",
    "empty_performance",
    "make_predictions",
    "performance_records",
    "period_key",
    "prediction_index",
    "prediction_key",
    "read_json",
    "read_performance",
    "refuse_reprocessing",
    "read_predictions",
    "run_key",
    "to_json",
    "upsert_performance",
    "write_json",
    "write_performance",
    "write_predictions",
]

STATE_PREFIX = "state"
PREDICTIONS_PREFIX = f"{STATE_PREFIX}/predictions"
PERFORMANCE_KEY = f"{STATE_PREFIX}/performance.parquet"
PERIODS_PREFIX = f"{STATE_PREFIX}/periods"
ALERTS_PREFIX = f"{STATE_PREFIX}/alerts"
RUNS_PREFIX = f"{STATE_PREFIX}/runs"
LAST_SKIP_KEY = f"{STATE_PREFIX}/last-skip.json"

PROBABILITY = "probability"
PREDICTION = "prediction"
MODEL_VERSION = "model_version"
THRESHOLD = "threshold"
SOURCE = "source"
SCHEDULED, BACKFILL = "scheduled", "backfill"
"""Prediction sources: made by the run for the previous period, or reconstructed later."""

PREDICTION_COLUMNS = (
    columns.CUSTOMER_ID,
    columns.CUTOFF,
    MODEL_VERSION,
    PROBABILITY,
    THRESHOLD,
    PREDICTION,
    SOURCE,
)

PERFORMANCE_COLUMNS = (
    columns.CUTOFF,
    MODEL_VERSION,
    "evaluated_period",
    SOURCE,
    "n",
    "positives",
    "base_rate",
    "f1",
    "precision",
    "recall",
    "accuracy",
    "roc_auc",
    "pr_auc",
    THRESHOLD,
)
HEADLINE = ("f1", "precision", "recall", "accuracy", "roc_auc", "pr_auc")
_PREDICTION_KEY_RE = re.compile(r"cutoff=(\d{4}-\d{2}-\d{2})/model=([^/]+)\.parquet$")


# --------------------------------------------------------------------------- JSON records


def write_json(zone: LandingZone, key: str, obj: Any) -> None:
    """Writes an object as indented JSON (atomically)."""
    zone.write_bytes(key, to_json(obj).encode())


def read_json(zone: LandingZone, key: str) -> Any | None:
    """Reads a JSON object, or ``None`` when the key does not exist."""
    if not zone.exists(key):
        return None
    return json.loads(zone.read_bytes(key))


def to_json(obj: Any) -> str:
    """Indented, key-sorted JSON; numpy scalars and timestamps become plain values."""
    return json.dumps(obj, indent=2, sort_keys=True, default=_json_default)


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return str(value)


def period_key(period: str) -> str:
    """Key of a period summary."""
    return f"{PERIODS_PREFIX}/{check_period(period)}.json"


def alerts_key(period: str) -> str:
    """Key of a period's alerts."""
    return f"{ALERTS_PREFIX}/{check_period(period)}.json"


def run_key(run_tag: str) -> str:
    """Key of one run's outcome record."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", run_tag) or "run"
    return f"{RUNS_PREFIX}/{safe}.json"


def committed_run(zone: LandingZone, period: str) -> dict[str, Any] | None:
    """The record of the run that committed ``period``, or ``None`` if no run did.

    Finalize writes the period summary before the ledger mark and the run record after it, so
    a run that crashed before its commit leaves no succeeded record (its period is redone).
    """
    summary = read_json(zone, period_key(period)) or {}
    if summary.get("status") != "succeeded":
        return None
    tag = summary.get("run_tag")
    record = (read_json(zone, run_key(str(tag))) or {}) if tag else summary
    if record.get("status") == "succeeded" and record.get("period") == period:
        return record
    return None


def refuse_reprocessing(zone: LandingZone, plan: PeriodPlan) -> None:
    """Refuses a plan for a period that a run already committed (the ledger lost it).

    The ledger alone decides what is pending; if it was deleted or replaced, a period whose
    predictions are already stored would be scored, judged and retrained on again.

    Raises:
        LedgerError: The plan's period was committed and its new cutoff's predictions are
            stored; the message names the run and how to go on.
    """
    if not plan.has_new or plan.new_cutoff not in prediction_index(zone):
        return
    record = committed_run(zone, plan.period)
    if record is None:
        return
    raise LedgerError(
        f"period {plan.period} was already processed by run {record.get('run_tag') or '?'} "
        f"(its predictions for {plan.new_cutoff} are in {zone.uri}/{PREDICTIONS_PREFIX}/), "
        f"but {zone.uri}/{LEDGER_KEY} does not list it: the ledger was deleted or replaced. "
        "Restore the ledger from a backup (on S3: an earlier object version), or pass "
        "--reprocess (pipeline parameter reprocess=true) to process the period again."
    )


# --------------------------------------------------------------------------- predictions


def prediction_key(cutoff: Any, model_version: str) -> str:
    """Key of a cutoff's predictions by one model version."""
    return f"{PREDICTIONS_PREFIX}/cutoff={iso_date(cutoff)}/model={model_version}.parquet"


def make_predictions(
    features: pd.DataFrame,
    probability: np.ndarray,
    model_version: str,
    threshold: float,
    source: str = SCHEDULED,
) -> pd.DataFrame:
    """Builds a prediction frame from scored feature rows.

    Args:
        features: Rows with ``customer_id`` and ``cutoff``.
        probability: P(churn) for each row.
        model_version: The registered version that scored them.
        threshold: Its decision threshold (predict churn when ``probability >= threshold``).
        source: :data:`SCHEDULED` or :data:`BACKFILL`.

    Returns:
        Columns :data:`PREDICTION_COLUMNS`, sorted by customer id.
    """
    proba = np.asarray(probability, dtype=float)
    if len(proba) != len(features):
        raise ValueError(f"{len(proba)} probabilities for {len(features)} rows")
    frame = pd.DataFrame(
        {
            columns.CUSTOMER_ID: features[columns.CUSTOMER_ID].astype(str).to_numpy(),
            columns.CUTOFF: pd.to_datetime(features[columns.CUTOFF]).to_numpy(),
            MODEL_VERSION: str(model_version),
            PROBABILITY: proba,
            THRESHOLD: float(threshold),
            PREDICTION: (proba >= float(threshold)).astype("int8"),
            SOURCE: source,
        }
    )
    return frame.sort_values(columns.CUSTOMER_ID, kind="stable").reset_index(drop=True)


def write_predictions(zone: LandingZone, predictions: pd.DataFrame) -> list[str]:
    """Stores predictions, one file per cutoff; a cutoff's earlier predictions are replaced.

    Writing the same cutoff twice (a re-run) leaves exactly one prediction per customer and
    cutoff: the new file is written first, then other versions' files for that cutoff are
    deleted.

    Args:
        zone: The landing zone.
        predictions: Frame from :func:`make_predictions` (one or more cutoffs, one model
            version per cutoff).

    Returns:
        The keys written.
    """
    written: list[str] = []
    if predictions.empty:
        return written
    cutoffs = pd.to_datetime(predictions[columns.CUTOFF])
    for cutoff in sorted(cutoffs.unique()):
        part = predictions[cutoffs == cutoff]
        versions = part[MODEL_VERSION].astype(str).unique()
        if len(versions) != 1:
            raise ValueError(f"cutoff {iso_date(cutoff)} has predictions of {list(versions)}")
        if part[columns.CUSTOMER_ID].duplicated().any():
            raise ValueError(f"cutoff {iso_date(cutoff)} has duplicate customer ids")
        key = prediction_key(cutoff, versions[0])
        buffer = io.BytesIO()
        part.loc[:, list(PREDICTION_COLUMNS)].to_parquet(buffer, index=False)
        zone.write_bytes(key, buffer.getvalue())
        folder = key.rsplit("/", 1)[0] + "/"
        for other in zone.list_keys(folder):
            if other != key:
                zone.delete(other)
        written.append(key)
    return written


def prediction_index(zone: LandingZone) -> dict[str, str]:
    """Maps each stored cutoff (ISO date) to the key of its predictions."""
    index: dict[str, str] = {}
    for key in zone.list_keys(PREDICTIONS_PREFIX + "/"):
        match = _PREDICTION_KEY_RE.search(key)
        if match:
            index[match.group(1)] = key  # sorted keys: one file per cutoff after a write
    return index


def read_predictions(zone: LandingZone, cutoffs: Iterable[Any] | None = None) -> pd.DataFrame:
    """Reads stored predictions (all cutoffs, or only the given ones)."""
    index = prediction_index(zone)
    wanted = None if cutoffs is None else {iso_date(c) for c in cutoffs}
    frames = [
        pd.read_parquet(io.BytesIO(zone.read_bytes(key)))
        for cutoff, key in sorted(index.items())
        if wanted is None or cutoff in wanted
    ]
    if not frames:
        return pd.DataFrame({name: pd.Series(dtype=object) for name in PREDICTION_COLUMNS})
    return pd.concat(frames, ignore_index=True)


# --------------------------------------------------------------------------- performance


def empty_performance() -> pd.DataFrame:
    """An empty performance history with the right columns."""
    return pd.DataFrame({name: pd.Series(dtype=object) for name in PERFORMANCE_COLUMNS})


def read_performance(zone: LandingZone) -> pd.DataFrame:
    """Reads the performance history (empty frame when there is none yet)."""
    if not zone.exists(PERFORMANCE_KEY):
        return empty_performance()
    return pd.read_parquet(io.BytesIO(zone.read_bytes(PERFORMANCE_KEY)))


def upsert_performance(history: pd.DataFrame, rows: pd.DataFrame) -> pd.DataFrame:
    """Adds rows to the history, replacing any earlier row of the same (cutoff, version).

    Returns:
        The new history, sorted by cutoff then model version.
    """
    if rows.empty:
        return history.reset_index(drop=True)
    frames = [f for f in (history, rows) if not f.empty]
    merged = pd.concat(frames, ignore_index=True)
    merged[columns.CUTOFF] = pd.to_datetime(merged[columns.CUTOFF])
    merged[MODEL_VERSION] = merged[MODEL_VERSION].astype(str)
    merged = merged.drop_duplicates([columns.CUTOFF, MODEL_VERSION], keep="last")
    return merged.sort_values([columns.CUTOFF, MODEL_VERSION], kind="stable").reset_index(drop=True)


def write_performance(zone: LandingZone, history: pd.DataFrame) -> None:
    """Writes the performance history (atomically)."""
    buffer = io.BytesIO()
    history.loc[:, list(PERFORMANCE_COLUMNS)].to_parquet(buffer, index=False)
    zone.write_bytes(PERFORMANCE_KEY, buffer.getvalue())


def performance_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """JSON-ready rows of a performance frame (ISO cutoffs, NaN as ``None``)."""
    records = []
    for row in frame.to_dict("records"):
        out: dict[str, Any] = {}
        for key, value in row.items():
            if key == columns.CUTOFF:
                out[key] = iso_date(value)
            elif isinstance(value, float | np.floating) and math.isnan(value):
                out[key] = None
            elif isinstance(value, np.generic):
                out[key] = value.item()
            else:
                out[key] = value
        records.append(out)
    return records
