"""State of the retraining loop: which period to process, predictions, delayed-label performance.

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

Every key is derived from the period or the cutoff, so a re-run overwrites what an earlier
(crashed) attempt may have written and nothing is ever duplicated.

**Periods and cutoffs.** The loop runs once per month (a *period*, ``YYYY-MM``). The run for
a period scores eligible customers as of the *new cutoff*, the first day after the period
(``2025-05`` -> ``2025-06-01``). A cutoff's churn label exists once its window has passed:
``cutoff + horizon <= data_end + 1 day`` (:func:`churn_kfp.learn.labels.label_churn`), so with a
30-day window the predictions for ``2025-06-01`` are judged by the run for ``2025-06``.

**Which period is next** (:func:`plan_period`): the oldest month with a pending (unprocessed)
transaction partition that is newer than every month already handled, where "handled" means
recorded in the ledger or covered by the champion's own training data (its test cutoff plus
the label window, read from its lineage tags). Pending partitions of older months are *late
data*: they are marked along with the next period (ingestion reads them anyway) but never
re-open a period whose predictions were already served.

Nothing here talks to MLflow or KFP: pandas and the landing zone in, frames and dicts out.
"""

from __future__ import annotations

import io
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from churn_kfp.core import columns
from churn_kfp.data.contract import TRANSACTIONS
from churn_kfp.data.storage import LandingZone, Partition
from churn_kfp.loop import ledger

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

_PERIOD_RE = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")
_PREDICTION_KEY_RE = re.compile(r"cutoff=(\d{4}-\d{2}-\d{2})/model=([^/]+)\.parquet$")


# --------------------------------------------------------------------------- periods


def check_period(period: str) -> str:
    """Returns ``period`` if it is a ``YYYY-MM`` month, else raises ``ValueError``."""
    if not isinstance(period, str) or not _PERIOD_RE.match(period):
        raise ValueError(f"a period is a month 'YYYY-MM', got {period!r}")
    return period


def period_cutoff(period: str) -> pd.Timestamp:
    """The new cutoff of a period: the first day after the month (``2025-05`` -> 06-01)."""
    return (pd.Period(check_period(period), freq="M") + 1).to_timestamp()


def cutoff_period(cutoff: Any) -> str:
    """The period whose run scores ``cutoff`` (the month before it)."""
    return str(pd.Timestamp(cutoff).to_period("M") - 1)


def iso_date(value: Any) -> str:
    """``YYYY-MM-DD`` of a date-like value."""
    return pd.Timestamp(value).date().isoformat()


def cutoff_step(cutoff: Any) -> int:
    """An MLflow metric step for a cutoff: ``yyyymmdd`` as an integer (20250601)."""
    ts = pd.Timestamp(cutoff)
    return ts.year * 10_000 + ts.month * 100 + ts.day


def is_matured(cutoff: Any, data_end: Any, horizon_days: int) -> bool:
    """Whether a cutoff's label window is fully observed (see :mod:`churn_kfp.learn.labels`)."""
    end_excl = pd.Timestamp(data_end).normalize() + pd.Timedelta(days=1)
    return pd.Timestamp(cutoff) + pd.Timedelta(days=int(horizon_days)) <= end_excl


def covered_month(tags: Mapping[str, str] | None) -> str | None:
    """The last month a model version's training data covered, from its lineage tags.

    Prefers ``data_end``; otherwise the data must have reached the end of the test cutoff's
    label window (``test_cutoff + horizon_days - 1 day``).

    Args:
        tags: Model-version tags (see :func:`churn_kfp.registry.lineage.lineage_tags`).

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


@dataclass
class PeriodPlan:
    """What a retraining run should process (output of :func:`plan_period`).

    Attributes:
        has_new: Whether there is a new period to process.
        period: The period (``YYYY-MM``), or ``""`` when there is none.
        new_cutoff: ISO date of the period's new cutoff, or ``""``.
        partitions: Keys of the period's pending transaction partitions.
        late: Keys of pending partitions of months already handled (marked with the period).
        reason: Why there is nothing to do, or a one-line description of the work.
        last_handled: The latest month already handled (ledger or champion), or ``""``.
        pending_periods: Every month with a pending partition newer than ``last_handled``.
    """

    has_new: bool
    period: str = ""
    new_cutoff: str = ""
    partitions: list[str] = field(default_factory=list)
    late: list[str] = field(default_factory=list)
    reason: str = ""
    last_handled: str = ""
    pending_periods: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PeriodPlan:
        """Reads :meth:`to_dict` output back."""
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})

    def keys_to_mark(self) -> list[str]:
        """Every partition key the run records in the ledger when it succeeds."""
        return sorted({*self.partitions, *self.late})


def _month(partition: Partition) -> str:
    return f"{partition.year:04d}-{partition.month:02d}"


def plan_period(
    zone: LandingZone,
    champion_covered: str | None,
    requested: str | None = None,
    table: str = TRANSACTIONS,
) -> PeriodPlan:
    """Chooses the period a retraining run processes (see the module docstring).

    Args:
        zone: The landing zone.
        champion_covered: Last month the champion's training data covered
            (:func:`covered_month`), or ``None``.
        requested: Process this month (``YYYY-MM``) if it has pending partitions; ``None`` or
            ``""`` picks the oldest pending month.
        table: The table whose partitions drive the loop.

    Returns:
        The plan; ``has_new`` is False when there is nothing to do, with the reason.
    """
    if requested:
        check_period(requested)
    done, _ = ledger.read_ledger(zone)
    handled = [str(v.get("period", ""))[:7] for v in done.values() if v.get("period")]
    if champion_covered:
        handled.append(champion_covered)
    last = max(handled) if handled else ""
    pending = ledger.pending_partitions(zone, table)
    late = [p for p in pending if last and _month(p) <= last]
    fresh = [p for p in pending if not last or _month(p) > last]
    months = sorted({_month(p) for p in fresh})
    plan = PeriodPlan(
        has_new=False,
        late=[p.key for p in late],
        last_handled=last,
        pending_periods=months,
    )
    if requested:
        if requested not in months:
            done_months = {str(v.get("period", ""))[:7] for v in done.values()}
            if requested in done_months or (last and requested <= last):
                plan.reason = f"period {requested} was already processed"
            else:
                plan.reason = f"no data for period {requested} in {zone.uri}"
            return plan
        period = requested
    elif not months:
        plan.reason = "no new data" + (
            f" ({len(late)} late partition(s) of handled months wait for the next period)"
            if late
            else ""
        )
        return plan
    else:
        period = months[0]
    plan.has_new = True
    plan.period = period
    plan.new_cutoff = iso_date(period_cutoff(period))
    plan.partitions = [p.key for p in fresh if _month(p) == period]
    plan.reason = (
        f"new data for {period}: {len(plan.partitions)} partition(s)"
        + (f" + {len(late)} late" if late else "")
        + (f"; still pending after it: {', '.join(months[1:])}" if len(months) > 1 else "")
    )
    return plan


# --------------------------------------------------------------------------- JSON state


def write_json(zone: LandingZone, key: str, obj: Any) -> None:
    """Writes an object as indented JSON (atomically)."""
    zone.write_bytes(key, json.dumps(obj, indent=2, sort_keys=True, default=_json_default).encode())


def read_json(zone: LandingZone, key: str) -> Any | None:
    """Reads a JSON object, or ``None`` when the key does not exist."""
    if not zone.exists(key):
        return None
    return json.loads(zone.read_bytes(key))


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


def read_period_summaries(zone: LandingZone) -> list[dict[str, Any]]:
    """All period summaries, oldest period first."""
    keys = [k for k in zone.list_keys(PERIODS_PREFIX + "/") if k.endswith(".json")]
    return [json.loads(zone.read_bytes(k)) for k in sorted(keys)]


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
    written = []
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


# --------------------------------------------------------------------------- delayed labels


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
        predictions: Frame of :data:`PREDICTION_COLUMNS`.
        transactions: Clean transactions through ``data_end``.
        data_end: Last day covered by the transactions.
        horizon_days: Churn window in days.
        evaluated_period: Recorded in the rows (the period whose run judged them).

    Returns:
        One row per matured (cutoff, model version), columns :data:`PERFORMANCE_COLUMNS`,
        oldest cutoff first; metrics that are undefined (one class) are NaN.
    """
    from churn_kfp.learn.evaluation import classification_metrics
    from churn_kfp.learn.labels import label_churn

    if predictions.empty:
        return empty_performance()
    cutoffs = pd.to_datetime(predictions[columns.CUTOFF])
    matured = [c for c in sorted(cutoffs.unique()) if is_matured(c, data_end, horizon_days)]
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
    from churn_kfp.learn.labels import label_churn

    if predictions.empty:
        return pd.DataFrame(columns=[columns.CUSTOMER_ID, columns.CUTOFF, columns.LABEL])
    cutoffs = pd.to_datetime(predictions[columns.CUTOFF])
    keep = [is_matured(c, data_end, horizon_days) for c in cutoffs]
    part = predictions.loc[keep, [columns.CUSTOMER_ID, columns.CUTOFF]]
    if part.empty:
        return pd.DataFrame(columns=[columns.CUSTOMER_ID, columns.CUTOFF, columns.LABEL])
    return label_churn(part, transactions, horizon_days, data_end)


def _nan(value: Any) -> float:
    return float("nan") if value is None else float(value)


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
        out = {}
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


# --------------------------------------------------------------------------- test hook

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
    import os

    if os.environ.get(FAIL_AT_ENV, "") == step:
        raise RuntimeError(f"{FAIL_AT_ENV}={step}: injected failure (test hook)")


# --------------------------------------------------------------------------- champion


REFERENCE_ARTIFACT = "reference/reference.parquet"
"""Where the registration step logs the reference sample in the model's MLflow run."""


@dataclass
class Champion:
    """The registered version holding the champion alias, loaded to score rows.

    Attributes:
        model_name: Registered model name.
        version: Its version.
        threshold: Its tuned decision threshold (version tag).
        tags: Its version tags (lineage, metrics).
        run_id: The MLflow run that logged it.
        model: The loaded ``mlflow.pyfunc`` model (as served).
    """

    model_name: str
    version: str
    threshold: float
    tags: dict[str, str]
    run_id: str | None
    model: Any = field(repr=False, default=None)

    def score(self, frame: pd.DataFrame) -> np.ndarray:
        """P(churn) of each row, through the served (pyfunc) model."""
        from churn_kfp.registry.register import ChampionIncompatibleError, positive_class_proba

        if frame.empty:
            return np.zeros(0, dtype=float)
        schema = self.model.metadata.get_input_schema()
        if schema is not None and schema.has_input_names():
            missing = [c for c in schema.required_input_names() if c not in frame.columns]
            if missing:
                raise ChampionIncompatibleError(
                    f"{self.model_name} version {self.version} needs columns missing from "
                    f"the rows: {missing}"
                )
            inputs = frame[[c for c in schema.input_names() if c in frame.columns]]
        else:
            inputs = frame[columns.feature_columns(frame.columns)]
        return positive_class_proba(self.model.predict(inputs))

    def covered_month(self) -> str | None:
        """Last month of its training data (see :func:`covered_month`)."""
        return covered_month(self.tags)


def champion_version(model_name: str) -> tuple[str, dict[str, str]] | None:
    """The champion's version and tags (no model loading), or ``None``."""
    from churn_kfp.registry import register as registry

    current = registry.champion(model_name)
    if current is None:
        return None
    return str(current.version), dict(current.tags or {})


def load_champion(model_name: str) -> Champion | None:
    """Loads the champion (``models:/<name>@champion`` resolved to its version)."""
    import mlflow

    from churn_kfp.registry import register as registry

    current = registry.champion(model_name)
    if current is None:
        return None
    version = str(current.version)
    tags = dict(current.tags or {})
    try:
        threshold = float(tags.get(registry.THRESHOLD_TAG, registry.DEFAULT_THRESHOLD))
    except ValueError:
        threshold = registry.DEFAULT_THRESHOLD
    model = mlflow.pyfunc.load_model(f"models:/{model_name}/{version}")
    return Champion(model_name, version, threshold, tags, current.run_id, model)


def load_reference(
    champion: Champion,
    transactions: pd.DataFrame,
    customers: pd.DataFrame | None,
    feedback: pd.DataFrame | None,
    windows: Sequence[int],
    eligibility_days: int,
    horizon_days: int,
    max_rows: int = 5000,
) -> tuple[pd.DataFrame, str]:
    """The champion's reference rows: features and labels of its test cutoff.

    Read from the reference sample the registration step logged in the champion's MLflow
    run (:data:`REFERENCE_ARTIFACT`, rows of split ``test``); for a version registered
    without one, rebuilt from the data at the ``test_cutoff`` of its lineage tags.

    Returns:
        ``(frame, source)``; an empty frame when neither works (``source`` says why).
    """
    import tempfile

    frame: pd.DataFrame | None = None
    source = ""
    if champion.run_id:
        try:
            import mlflow

            with tempfile.TemporaryDirectory() as tmp:
                local = mlflow.artifacts.download_artifacts(
                    run_id=champion.run_id, artifact_path=REFERENCE_ARTIFACT, dst_path=tmp
                )
                frame = pd.read_parquet(local)
            if columns.SPLIT in frame.columns and (frame[columns.SPLIT] == columns.TEST).any():
                frame = frame[frame[columns.SPLIT] == columns.TEST]
            source = f"logged reference of version {champion.version} ({REFERENCE_ARTIFACT})"
        except Exception as exc:  # noqa: BLE001 - any failure means "not logged": rebuild
            frame = None
            source = f"no logged reference ({type(exc).__name__})"
    if frame is None or frame.empty:
        test_cutoff = champion.tags.get("test_cutoff")
        if not test_cutoff:
            return pd.DataFrame(), f"{source}; no test_cutoff tag to rebuild it from".lstrip("; ")
        from churn_kfp.learn import features as feats
        from churn_kfp.learn.labels import label_churn

        data_end = pd.Timestamp(transactions["timestamp"].max())
        frame = feats.build_features(
            transactions,
            pd.Timestamp(test_cutoff),
            customers=customers,
            feedback=feedback,
            windows=tuple(windows),
            eligibility_days=eligibility_days,
        )
        if is_matured(test_cutoff, data_end, horizon_days):
            frame = label_churn(frame, transactions, horizon_days, data_end)
        source = f"{source}; rebuilt at the champion's test cutoff {test_cutoff}".lstrip("; ")
    if len(frame) > max_rows:
        frame = frame.sample(n=max_rows, random_state=0)
    return frame.reset_index(drop=True), source


def reference_sample(table: pd.DataFrame, max_rows_per_split: int = 5000) -> pd.DataFrame:
    """A seeded sample (at most ``max_rows_per_split`` per split) of a labelled table.

    The registration step logs it as :data:`REFERENCE_ARTIFACT`, the reference of drift.
    """
    if columns.SPLIT not in table.columns:
        return table.sample(n=min(len(table), max_rows_per_split), random_state=0)
    parts = [
        part.sample(n=min(len(part), max_rows_per_split), random_state=0)
        for _, part in table.groupby(columns.SPLIT, sort=True)
    ]
    return pd.concat(parts).sort_index()


# --------------------------------------------------------------------------- monitoring step


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
    ``summary.json``); :func:`finalize` copies it into the state at the very end, so a
    failure anywhere before leaves the state untouched.

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
    from pathlib import Path

    from churn_kfp.learn import features as feats
    from churn_kfp.loop import drift as drift_mod

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    new_cutoff = pd.Timestamp(plan.new_cutoff)
    data_end = pd.Timestamp(transactions["timestamp"].max())

    def features_at(cutoff: pd.Timestamp) -> pd.DataFrame:
        return feats.build_features(
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
        and is_matured(previous, data_end, horizon_days)
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
        monitored = drift_mod.monitored_columns(current.columns)
    target: dict[str, Any] | None = None
    if reference.empty:
        snapshot, result = None, drift_mod.DriftResult(note=reference_source)
        target_snapshot = None
    else:
        reference = reference.assign(**{drift_mod.PREDICTION_COLUMN: champion.score(reference)})
        scored = current.assign(**{drift_mod.PREDICTION_COLUMN: current_proba})
        snapshot, result = drift_mod.feature_drift(reference, scored, monitored)
        target_snapshot = None
        if latest is not None and columns.LABEL in reference.columns:
            latest_rows = judged[
                pd.to_datetime(judged[columns.CUTOFF]) == pd.Timestamp(latest[columns.CUTOFF])
            ]
            realised = labels_for(latest_rows, transactions, data_end, horizon_days)
            target_snapshot, target_result = drift_mod.target_drift(
                reference[columns.LABEL], realised[columns.LABEL]
            )
            if target_result is not None:
                target = asdict(target_result) | {
                    "cutoff": latest[columns.CUTOFF],
                    "reference_rate": float(reference[columns.LABEL].mean()),
                    "current_rate": float(realised[columns.LABEL].mean()),
                }
    drift_mod.save_html(snapshot, out / "drift_report.html", result.note)
    drift_mod.save_html(
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
    }
    write_local_json(out / "summary.json", summary)
    return summary


def write_local_json(path: Any, obj: Any) -> None:
    """Writes JSON to a local file."""
    from pathlib import Path

    Path(path).write_text(json.dumps(obj, indent=2, sort_keys=True, default=_json_default))


# --------------------------------------------------------------------------- MLflow


MONITORING_RUN_TAG = "churn.kind"
MONITORING_RUN_VALUE = "monitoring"


def log_monitoring(
    experiment_id: str,
    model_name: str,
    summary: Mapping[str, Any],
    decision: Mapping[str, Any],
    artifacts: Mapping[str, str],
) -> str:
    """Logs a period to the model's long-lived MLflow monitoring run; idempotent per step.

    Metrics of matured cutoffs (``matured_f1``, ``matured_precision``, ...) use the cutoff
    as the step (``yyyymmdd``); metrics of the new cutoff (``drift_share``,
    ``drifted_columns``, ``prediction_drift_score``, ``target_drift_score``,
    ``predicted_churn_rate``, ``retrain``) use the new cutoff. A step already logged for a
    key is not logged again, so re-running a period adds nothing. The period's reports go to
    ``periods/<period>/``.

    Args:
        experiment_id: MLflow experiment (from :func:`churn_kfp.registry.register.connect`).
        model_name: Registered model name; one monitoring run per name.
        summary: The monitoring summary of :func:`monitor`.
        decision: The retraining decision dict.
        artifacts: File name -> local path of the period's reports.

    Returns:
        The monitoring run id.
    """
    from mlflow import MlflowClient

    client = MlflowClient()
    found = client.search_runs(
        [experiment_id],
        filter_string=f"tags.`{MONITORING_RUN_TAG}` = '{MONITORING_RUN_VALUE}' "
        f"and tags.model_name = '{model_name}'",
        max_results=1,
    )
    if found:
        run_id = found[0].info.run_id
    else:
        run = client.create_run(
            experiment_id,
            run_name=f"monitoring-{model_name}",
            tags={MONITORING_RUN_TAG: MONITORING_RUN_VALUE, "model_name": model_name},
        )
        run_id = run.info.run_id

    points: list[tuple[str, float, int]] = []
    for row in summary.get("matured", []):
        step = cutoff_step(row[columns.CUTOFF])
        for name in (*HEADLINE, "base_rate"):
            value = row.get(name)
            if value is not None:
                points.append((f"matured_{name}", float(value), step))
    step = cutoff_step(summary["new_cutoff"])
    data = summary.get("drift") or {}
    pred = data.get("prediction") or {}
    target = data.get("target") or {}
    scored = summary.get("scored") or {}
    for name, value in (
        ("drift_share", data.get("share") if data.get("n_columns") else None),
        ("drifted_columns", data.get("n_drifted") if data.get("n_columns") else None),
        ("prediction_drift_score", pred.get("score")),
        ("target_drift_score", target.get("score")),
        ("predicted_churn_rate", scored.get("predicted_churn_rate")),
        ("scored_customers", scored.get("rows")),
        ("retrain", 1.0 if decision.get("retrain") else 0.0),
    ):
        if value is not None:
            points.append((name, float(value), step))

    logged: dict[str, set[int]] = {}
    for key, value, point_step in points:
        if key not in logged:
            logged[key] = {m.step for m in client.get_metric_history(run_id, key)}
        if point_step in logged[key]:
            continue
        client.log_metric(run_id, key, value, step=point_step)
        logged[key].add(point_step)
    for local in artifacts.values():
        client.log_artifact(run_id, local, artifact_path=f"periods/{summary['period']}")
    client.set_tag(run_id, "last_period", summary["period"])
    return run_id


# --------------------------------------------------------------------------- finalize


def finalize(
    *,
    zone: LandingZone,
    plan: PeriodPlan,
    monitoring_dir: str,
    decision: Mapping[str, Any],
    registration: Mapping[str, Any] | None,
    run_info: Mapping[str, Any],
    webhook_url: str = "",
    experiment_id: str | None = None,
) -> dict[str, Any]:
    """Commits a period: stores predictions, history, alerts and summary, then marks the ledger.

    Order matters: everything keyed by period/cutoff is written first (a re-run overwrites
    it), the ledger is marked last. A failure before the mark leaves the period pending and
    the next run redoes it from scratch.

    Args:
        zone: The landing zone holding ``state/``.
        plan: The period plan from the new-data check.
        monitoring_dir: The folder :func:`monitor` wrote.
        decision: :meth:`~churn_kfp.loop.decision.RetrainDecision.to_dict` output.
        registration: The registration summary when a challenger was trained, else ``None``.
        run_info: ``pipeline``, ``pipeline_run_id``, ``run_tag`` of this run.
        webhook_url: Optional endpoint for the alerts.
        experiment_id: MLflow experiment of the monitoring run (``None``: do not log to
            MLflow, for tests without a tracking server).

    Returns:
        The period summary (also stored as ``state/periods/<period>.json``).
    """
    from pathlib import Path

    from churn_kfp.data.storage import discover_partitions
    from churn_kfp.loop import decision as decision_mod

    folder = Path(monitoring_dir)
    summary = json.loads((folder / "summary.json").read_text())
    predictions = pd.read_parquet(folder / "predictions.parquet")
    performance = pd.read_parquet(folder / "performance.parquet")
    if registration and registration.get("promoted"):
        predictions, summary["scored"] = rescore_new_cutoff(
            predictions, folder / "features.parquet", summary, registration
        )

    write_predictions(zone, predictions)
    history = upsert_performance(read_performance(zone), performance)
    write_performance(zone, history)

    monitoring_run = None
    if experiment_id is not None:
        artifacts = {
            name: str(folder / name)
            for name in ("drift_report.html", "target_drift.html", "summary.json")
            if (folder / name).exists()
        }
        monitoring_run = log_monitoring(
            experiment_id, summary["champion"]["model_name"], summary, decision, artifacts
        )

    alerts = decision_mod.build_alerts(plan.period, decision, registration)
    decision_mod.log_alerts(alerts)
    webhook = decision_mod.notify(webhook_url, plan.period, alerts)
    write_json(zone, alerts_key(plan.period), alerts)

    champion_after = summary["champion"]["version"]
    if registration:
        champion_after = str(registration.get("champion_version") or champion_after)
    period_summary = {
        "period": plan.period,
        "new_cutoff": plan.new_cutoff,
        "data_end": summary.get("data_end"),
        "status": "succeeded",
        "champion_before": summary["champion"]["version"],
        "champion_after": champion_after,
        "scored": summary.get("scored"),
        "backfilled": summary.get("backfilled"),
        "latest_matured": summary.get("latest_matured"),
        "newly_matured": summary.get("newly_matured"),
        "drift": {
            key: (summary.get("drift") or {}).get(key)
            for key in (
                "share",
                "n_drifted",
                "n_columns",
                "drifted_columns",
                "prediction",
                "target",
                "note",
            )
        },
        "reference": summary.get("reference"),
        "decision": dict(decision),
        "registration": _registration_brief(registration),
        "alerts": alerts,
        "webhook": webhook,
        "partitions": plan.keys_to_mark(),
        "monitoring_run_id": monitoring_run,
        **{k: run_info.get(k) for k in ("pipeline", "pipeline_run_id", "run_tag")},
    }
    write_json(zone, period_key(plan.period), period_summary)

    # the commit point: only now is the period done
    keys = set(plan.keys_to_mark())
    partitions = [p for p in discover_partitions(zone, TRANSACTIONS) if p.key in keys]
    run_id = str(run_info.get("run_tag") or run_info.get("pipeline_run_id") or "run")
    ledger.mark_processed(zone, partitions, run_id=run_id)

    record = {
        "status": "succeeded",
        "period": plan.period,
        "reason": decision.get("summary", ""),
        "summary_key": period_key(plan.period),
        **{k: run_info.get(k) for k in ("pipeline", "pipeline_run_id", "run_tag")},
    }
    if run_info.get("run_tag"):
        write_json(zone, run_key(str(run_info["run_tag"])), record)
    return period_summary


def rescore_new_cutoff(
    predictions: pd.DataFrame,
    features_path: Any,
    summary: Mapping[str, Any],
    registration: Mapping[str, Any],
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Replaces the new cutoff's predictions with those of a champion promoted in this run.

    The monitoring step scored the new cutoff before retraining; when a challenger wins, it
    is the model that serves the coming period, so its scores are the ones stored (and
    judged once the labels mature).

    Returns:
        The updated predictions and the updated ``scored`` block of the summary.
    """
    model_name = str(registration.get("model_name") or summary["champion"]["model_name"])
    champion = load_champion(model_name)
    expected = str(registration.get("champion_version"))
    if champion is None or champion.version != expected:
        raise RuntimeError(
            f"the champion of {model_name!r} is {champion and champion.version}, expected "
            f"version {expected} promoted by this run"
        )
    features = pd.read_parquet(features_path)
    proba = champion.score(features)
    fresh = make_predictions(features, proba, champion.version, champion.threshold)
    new_cutoff = pd.Timestamp(summary["new_cutoff"])
    kept = predictions[pd.to_datetime(predictions[columns.CUTOFF]) != new_cutoff]
    scored = dict(summary.get("scored") or {})
    scored.update(
        {
            "model_version": champion.version,
            "rescored_after_promotion": True,
            "predicted_churn_rate": float(np.mean(proba >= champion.threshold))
            if len(proba)
            else None,
            "mean_probability": float(np.mean(proba)) if len(proba) else None,
        }
    )
    return pd.concat([kept, fresh], ignore_index=True), scored


def _registration_brief(registration: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if not registration:
        return None
    keys = (
        "model_name",
        "model_version",
        "champion_version",
        "previous_champion_version",
        "promoted",
        "gate",
        "decision_reason",
        "metric",
        "candidate_metric",
        "champion_metric",
        "threshold",
        "run_id",
    )
    brief = {k: registration.get(k) for k in keys}
    lineage = registration.get("lineage") or {}
    brief["cutoffs"] = lineage.get("cutoffs")
    brief["test_cutoff"] = lineage.get("test_cutoff")
    return brief


def record_skip(zone: LandingZone, plan: PeriodPlan, run_info: Mapping[str, Any]) -> dict:
    """Records a run that found nothing to do (``state/last-skip.json`` and the run record)."""
    from churn_kfp.loop import decision as decision_mod

    alert = decision_mod.skip_alert(plan.period, plan.reason)
    decision_mod.log_alerts([alert])
    record = {
        "status": "skipped",
        "period": plan.period,
        "reason": plan.reason,
        "pending_periods": plan.pending_periods,
        "last_handled": plan.last_handled,
        **{k: run_info.get(k) for k in ("pipeline", "pipeline_run_id", "run_tag")},
    }
    write_json(zone, LAST_SKIP_KEY, record)
    if run_info.get("run_tag"):
        write_json(zone, run_key(str(run_info["run_tag"])), record)
    return record
