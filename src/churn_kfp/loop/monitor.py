"""The monitor step of a period: score the new cutoff, judge matured predictions, measure drift.

:func:`monitor` writes only to its output folder, never to the loop's state:
:func:`churn_kfp.loop.finalize.finalize` commits that folder at the end of the run.
:func:`evaluate_matured` judges stored predictions against realised churn once their label
window has closed (:func:`churn_kfp.core.dates.label_window_closed`). The champion is loaded
from MLflow by the caller (:func:`churn_kfp.registry.champion.load_champion`); its reference
sample is read from its MLflow run (:func:`churn_kfp.loop.reference.load_reference`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from churn_kfp.core import columns
from churn_kfp.core.dates import label_window_closed
from churn_kfp.data.storage import LandingZone
from churn_kfp.learn.features import build_features
from churn_kfp.learn.labels import label_churn
from churn_kfp.learn.metrics import classification_metrics
from churn_kfp.loop.drift import (
    PREDICTION_COLUMN,
    DriftResult,
    feature_drift,
    monitored_columns,
    save_html,
    target_drift,
)
from churn_kfp.loop.periods import PeriodPlan, iso_date
from churn_kfp.loop.reference import load_reference
from churn_kfp.loop.state import (
    BACKFILL,
    HEADLINE,
    MODEL_VERSION,
    PERFORMANCE_COLUMNS,
    PROBABILITY,
    SOURCE,
    THRESHOLD,
    empty_performance,
    make_predictions,
    performance_records,
    period_key,
    prediction_index,
    read_json,
    read_performance,
    read_predictions,
    to_json,
)
from churn_kfp.registry.champion import Champion

__all__ = [
    "HELD_OUT_F1_TAG",
    "HISTORY_PERIODS",
    "evaluate_matured",
    "labels_for",
    "monitor",
    "recent_periods",
]

HELD_OUT_F1_TAG = "metric.test.f1"
"""The model-version tag with a version's held-out test F1 (set at registration)."""

HISTORY_PERIODS = 12
"""Earlier periods a monitoring summary carries for the decision's persistence and back-off."""


def recent_periods(
    zone: LandingZone, period: str, limit: int = HISTORY_PERIODS
) -> list[dict[str, Any]]:
    """What the decision needs of the periods before ``period``, newest first.

    Reads the stored period summaries back from the month before ``period``; stops at the
    first month without one (the loop's history is contiguous) or after ``limit`` months.

    Returns:
        ``period``, ``champion`` (monitored), ``drift_share``, ``prediction_drift``,
        ``retrained`` and ``promoted`` per period.
    """
    history = []
    month = pd.Period(period, freq="M")
    for _ in range(limit):
        month -= 1
        stored = read_json(zone, period_key(str(month)))
        if not stored:
            break
        drift = stored.get("drift") or {}
        registration = stored.get("registration") or {}
        history.append(
            {
                "period": str(month),
                "champion": str(stored.get("champion_before") or ""),
                "drift_share": drift.get("share") if drift.get("n_columns") else None,
                "prediction_drift": bool((drift.get("prediction") or {}).get("drifted")),
                "retrained": bool((stored.get("decision") or {}).get("retrain")),
                "promoted": bool(registration.get("promoted")),
            }
        )
    return history


def evaluate_matured(
    predictions: pd.DataFrame,
    transactions: pd.DataFrame,
    data_end: Any,
    horizon_days: int,
    evaluated_period: str = "",
) -> pd.DataFrame:
    """Judges stored predictions whose label window has passed against realised churn.

    Each prediction row is labelled with :func:`churn_kfp.learn.labels.label_churn` (churn = no
    purchase in ``[cutoff, cutoff + horizon)``) and the metrics of every (cutoff, model
    version) are computed at that version's threshold. Cutoffs whose window has not passed
    yet are left out: their labels would call every late buyer a churner.

    Args:
        predictions: Frame of :data:`~churn_kfp.loop.state.PREDICTION_COLUMNS`.
        transactions: Clean transactions through ``data_end``.
        data_end: Last day covered by the transactions.
        horizon_days: Churn window in days.
        evaluated_period: Recorded in the rows (the period whose run judged them).

    Returns:
        One row per matured (cutoff, model version), columns
        :data:`~churn_kfp.loop.state.PERFORMANCE_COLUMNS`, oldest cutoff first; metrics that
        are undefined (one class) are NaN.
    """
    if predictions.empty:
        return empty_performance()
    cutoffs = pd.to_datetime(predictions[columns.CUTOFF])
    matured = [
        c for c in sorted(cutoffs.unique()) if label_window_closed(c, data_end, horizon_days)
    ]
    rows = []
    for cutoff in matured:
        part = predictions[cutoffs == cutoff]
        labelled = label_churn(
            part[[columns.CUSTOMER_ID, columns.CUTOFF]], transactions, horizon_days, data_end
        )
        for version, rows_v in part.groupby(MODEL_VERSION, sort=True):
            y = labelled.loc[rows_v.index, columns.LABEL].to_numpy()
            threshold = float(rows_v[THRESHOLD].iloc[0])
            metrics = classification_metrics(y, rows_v[PROBABILITY].to_numpy(), threshold)
            sources = sorted(set(rows_v[SOURCE].astype(str)))
            rows.append(
                {
                    columns.CUTOFF: pd.Timestamp(cutoff),
                    MODEL_VERSION: str(version),
                    "evaluated_period": evaluated_period,
                    SOURCE: ",".join(sources),
                    "n": int(metrics["n"]),
                    "positives": int(metrics["positives"]),
                    "base_rate": _nan(metrics["base_rate"]),
                    **{name: _nan(metrics[name]) for name in HEADLINE},
                    THRESHOLD: threshold,
                }
            )
    if not rows:
        return empty_performance()
    return pd.DataFrame(rows, columns=list(PERFORMANCE_COLUMNS))


def labels_for(
    predictions: pd.DataFrame, transactions: pd.DataFrame, data_end: Any, horizon_days: int
) -> pd.DataFrame:
    """Realised labels of the matured prediction rows (``customer_id``, ``cutoff``, churn)."""
    if predictions.empty:
        return pd.DataFrame(columns=[columns.CUSTOMER_ID, columns.CUTOFF, columns.LABEL])
    cutoffs = pd.to_datetime(predictions[columns.CUTOFF])
    keep = [label_window_closed(c, data_end, horizon_days) for c in cutoffs]
    part = predictions.loc[keep, [columns.CUSTOMER_ID, columns.CUTOFF]]
    if part.empty:
        return pd.DataFrame(columns=[columns.CUSTOMER_ID, columns.CUTOFF, columns.LABEL])
    return label_churn(part, transactions, horizon_days, data_end)


def _tag_float(value: str | None) -> float | None:
    try:
        return float(value) if value else None
    except ValueError:
        return None


def _nan(value: Any) -> float:
    return float("nan") if value is None else float(value)


def monitor(
    *,
    zone: LandingZone,
    plan: PeriodPlan,
    champion: Champion,
    transactions: pd.DataFrame,
    customers: pd.DataFrame | None,
    feedback: pd.DataFrame | None,
    horizon_days: int,
    eligibility_days: int,
    windows: Sequence[int],
    out_dir: str,
    drift_columns: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Scores the new cutoff, judges matured predictions and measures drift; writes no state.

    Everything the period will store is written to ``out_dir`` (``predictions.parquet``,
    ``performance.parquet``, ``drift_report.html``, ``target_drift.html``,
    ``summary.json``); :func:`~churn_kfp.loop.finalize.finalize` copies it into the state at
    the very end, so a failure anywhere before leaves the state untouched.

    Steps: features of eligible customers at the new cutoff (data strictly before it), scored
    by the champion; if the previous monthly cutoff has matured but has no stored predictions
    (the first run after the training pipeline), the champion scores it now, provided its
    training data ended before that cutoff (``source = backfill``); every stored or
    backfilled prediction whose window has passed is joined with its realised label; drift of
    the new cutoff's features and scores against the champion's reference, and of the latest
    matured labels against the reference labels.

    Returns:
        The monitoring summary (also in ``summary.json``): ``period``, ``new_cutoff``,
        ``data_end``, ``champion`` (version, threshold), ``scored`` (rows, predicted churn
        rate), ``backfilled``, ``matured`` (performance records), ``newly_matured``,
        ``latest_matured``, ``drift`` (:class:`~churn_kfp.loop.drift.DriftResult` dict plus
        ``target``), ``reference`` (rows, source).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    new_cutoff = pd.Timestamp(plan.new_cutoff)
    data_end = pd.Timestamp(transactions["timestamp"].max())

    def features_at(cutoff: pd.Timestamp) -> pd.DataFrame:
        return build_features(
            transactions,
            cutoff,
            customers=customers,
            feedback=feedback,
            windows=tuple(windows),
            eligibility_days=eligibility_days,
        )

    current = features_at(new_cutoff)
    current.to_parquet(out / "features.parquet", index=False)
    current_proba = champion.score(current)
    predictions = [make_predictions(current, current_proba, champion.version, champion.threshold)]

    # backfill the previous monthly cutoff when it matured without stored predictions
    stored = prediction_index(zone)
    previous = (new_cutoff.to_period("M") - 1).to_timestamp()
    covered = champion.covered_month()
    backfilled = ""
    if (
        iso_date(previous) not in stored
        and label_window_closed(previous, data_end, horizon_days)
        and covered is not None
        and covered < str(previous.to_period("M"))
    ):
        rows = features_at(previous)
        if not rows.empty:
            predictions.append(
                make_predictions(
                    rows, champion.score(rows), champion.version, champion.threshold, BACKFILL
                )
            )
            backfilled = iso_date(previous)
    new_predictions = pd.concat(predictions, ignore_index=True)
    new_predictions.to_parquet(out / "predictions.parquet", index=False)

    # delayed labels: every stored prediction (except cutoffs re-scored now) + the new ones
    rescored = {iso_date(c) for c in pd.to_datetime(new_predictions[columns.CUTOFF]).unique()}
    old = read_predictions(zone, [c for c in stored if c not in rescored])
    judged = pd.concat([f for f in (old, new_predictions) if not f.empty], ignore_index=True)
    performance = evaluate_matured(
        judged, transactions, data_end, horizon_days, evaluated_period=plan.period
    )
    performance.to_parquet(out / "performance.parquet", index=False)
    history = read_performance(zone)
    known = {
        (iso_date(c), str(v))
        for c, v in zip(history[columns.CUTOFF], history[MODEL_VERSION], strict=True)
    }
    matured_records = performance_records(performance)
    newly = [r for r in matured_records if (r[columns.CUTOFF], r[MODEL_VERSION]) not in known]
    latest = matured_records[-1] if matured_records else None

    # drift against the champion's reference
    reference, reference_source = load_reference(
        champion,
        transactions,
        customers,
        feedback,
        windows,
        eligibility_days,
        horizon_days,
    )
    if drift_columns:
        monitored = [c for c in drift_columns if c in current.columns]
    else:
        monitored = monitored_columns(current.columns)
    target: dict[str, Any] | None = None
    if reference.empty:
        snapshot, result = None, DriftResult(note=reference_source)
        target_snapshot = None
    else:
        reference = reference.assign(**{PREDICTION_COLUMN: champion.score(reference)})
        scored = current.assign(**{PREDICTION_COLUMN: current_proba})
        snapshot, result = feature_drift(reference, scored, monitored)
        target_snapshot = None
        if latest is not None and columns.LABEL in reference.columns:
            latest_rows = judged[
                pd.to_datetime(judged[columns.CUTOFF]) == pd.Timestamp(latest[columns.CUTOFF])
            ]
            realised = labels_for(latest_rows, transactions, data_end, horizon_days)
            target_snapshot, target_result = target_drift(
                reference[columns.LABEL], realised[columns.LABEL]
            )
            if target_result is not None:
                target = asdict(target_result) | {
                    "cutoff": latest[columns.CUTOFF],
                    "reference_rate": float(reference[columns.LABEL].mean()),
                    "current_rate": float(realised[columns.LABEL].mean()),
                }
    save_html(snapshot, out / "drift_report.html", result.note)
    save_html(
        target_snapshot,
        out / "target_drift.html",
        "no matured labels yet" if latest is None else "no reference labels",
    )

    summary = {
        "period": plan.period,
        "new_cutoff": plan.new_cutoff,
        "data_end": iso_date(data_end),
        "horizon_days": int(horizon_days),
        "champion": {
            "model_name": champion.model_name,
            "version": champion.version,
            "threshold": champion.threshold,
            "covered_month": covered,
            "held_out_f1": _tag_float(champion.tags.get(HELD_OUT_F1_TAG)),
            "refit_through": champion.tags.get("refit_through"),
        },
        "scored": {
            "cutoff": plan.new_cutoff,
            "model_version": champion.version,
            "rows": int(len(current)),
            "predicted_churn_rate": float(np.mean(current_proba >= champion.threshold))
            if len(current)
            else None,
            "mean_probability": float(np.mean(current_proba)) if len(current) else None,
        },
        "backfilled": backfilled,
        "matured": matured_records,
        "newly_matured": newly,
        "latest_matured": latest,
        "drift": result.to_dict() | {"target": target, "monitored_columns": monitored},
        "reference": {"rows": int(len(reference)), "source": reference_source},
        "history": recent_periods(zone, plan.period),
    }
    (out / "summary.json").write_text(to_json(summary))
    return summary
