import numpy as np
import pandas as pd
import pytest

from churn_kfp.core import columns
from churn_kfp.loop import drift

N = 1200  # above Evidently's 1000-row switch: distance tests, as on real cutoffs


def _frame(rng, shift: float) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": [f"C{i}" for i in range(N)],
            "cutoff": pd.Timestamp("2025-06-01"),
            "frequency_30d": rng.poisson(3 + 3 * shift, N).astype(float),
            "monetary_30d": rng.gamma(2.0, 20.0, N),
            "sentiment_mean_90d": rng.normal(0.3 - shift, 0.3, N),
            "lifetime_frequency": rng.poisson(10 + 20 * shift, N).astype(float),
            "segment": rng.choice(["budget", "premium"], N, p=[0.5, 0.5]),
            drift.PREDICTION_COLUMN: rng.beta(2, 5 - 3 * shift, N),
        }
    )


@pytest.fixture(scope="module")
def frames():
    rng = np.random.default_rng(0)
    return _frame(rng, 0.0), _frame(rng, 0.0), _frame(rng, 1.0)


@pytest.fixture(scope="module")
def no_drift(frames):
    reference, same, _ = frames
    return drift.feature_drift(reference, same, drift.monitored_columns(reference.columns))


@pytest.fixture(scope="module")
def with_drift(frames):
    reference, _, shifted = frames
    return drift.feature_drift(reference, shifted, drift.monitored_columns(reference.columns))


def test_monitored_columns_leave_out_history_dependent_features():
    names = [
        "customer_id",
        "cutoff",
        "split",
        "churn",
        "recency_days",
        "tenure_days",
        "frequency_30d",
        "lifetime_frequency",
        "lifetime_whatever",
        "days_since_feedback",
        "segment",
    ]
    assert drift.monitored_columns(names) == ["recency_days", "frequency_30d", "segment"]
    assert drift.monitored_columns(names, exclude=["segment"]) == [
        "recency_days",
        "tenure_days",
        "frequency_30d",
        "lifetime_frequency",
        "lifetime_whatever",
        "days_since_feedback",
    ]


def test_same_distribution_reads_as_no_drift(no_drift):
    _, result = no_drift
    assert result.n_columns == 4
    assert result.share == 0.0 and result.n_drifted == 0 and result.drifted_columns == []
    assert result.prediction is not None and result.prediction.drifted is False
    assert result.rows == {"reference": N, "current": N}


def test_shifted_columns_are_named(with_drift):
    _, result = with_drift
    assert result.drifted_columns == ["frequency_30d", "sentiment_mean_90d"]
    assert result.n_drifted == 2 and result.share == pytest.approx(0.5)
    assert set(result.columns) == {
        "frequency_30d",
        "monetary_30d",
        "sentiment_mean_90d",
        "segment",
    }
    assert "lifetime_frequency" not in result.columns  # history-dependent: not monitored
    assert result.columns["segment"].method.lower().startswith("jensen")
    assert result.columns["frequency_30d"].score > result.columns["frequency_30d"].threshold
    assert result.prediction.drifted is True


def test_parsing_reads_metrics_by_name_not_position(with_drift):
    snapshot, result = with_drift
    raw = snapshot.dict()
    shuffled = {"metrics": list(reversed(raw["metrics"])), "tests": list(reversed(raw["tests"]))}
    names = list(result.columns)
    again = drift.parse_snapshot(shuffled, names, drift.PREDICTION_COLUMN)
    assert again.share == result.share
    assert again.drifted_columns == result.drifted_columns
    assert again.prediction == result.prediction
    # asking for a subset: the preset's count covers other columns, so it is recomputed
    subset = drift.parse_snapshot(raw, ["monetary_30d", "sentiment_mean_90d"])
    assert subset.share == pytest.approx(0.5) and subset.drifted_columns == ["sentiment_mean_90d"]


def test_parsing_a_hand_made_snapshot_with_string_statuses():
    snapshot = {
        "tests": [
            {
                "metric_config": {
                    "params": {"type": "evidently:metric_v2:ValueDrift", "column": "b"}
                },
                "status": "FAIL",
            },
            {
                "metric_config": {
                    "params": {"type": "evidently:metric_v2:ValueDrift", "column": "a"}
                },
                "status": "SUCCESS",
            },
        ],
        "metrics": [
            {
                "config": {
                    "type": "evidently:metric_v2:ValueDrift",
                    "column": "b",
                    "method": "Wasserstein distance (normed)",
                    "threshold": 0.1,
                },
                "value": 0.4,
            },
            {
                "config": {
                    "type": "evidently:metric_v2:ValueDrift",
                    "column": "a",
                    "method": "Wasserstein distance (normed)",
                    "threshold": 0.1,
                },
                "value": 0.02,
            },
            {
                "config": {
                    "type": "evidently:metric_v2:ValueDrift",
                    "column": "c",
                    "method": "K-S p_value",
                    "threshold": 0.05,
                },
                "value": 0.001,
            },
        ],
    }
    result = drift.parse_snapshot(snapshot, ["a", "b", "c"])
    assert result.drifted_columns == ["b", "c"]  # c: no test, a p-value below its threshold
    assert result.share == pytest.approx(2 / 3)
    assert result.columns["a"].drifted is False


def test_target_drift_compares_churn_rates():
    rng = np.random.default_rng(1)
    reference = pd.Series((rng.random(2000) < 0.2).astype(int))
    _, same = drift.target_drift(reference, pd.Series((rng.random(2000) < 0.2).astype(int)))
    _, moved = drift.target_drift(reference, pd.Series((rng.random(2000) < 0.45).astype(int)))
    assert same.column == "churn" and same.drifted is False
    assert moved.drifted is True and moved.score > same.score
    assert drift.target_drift(reference, pd.Series([], dtype=int)) == (None, None)


def test_html_reports(with_drift, tmp_path):
    snapshot, _ = with_drift
    page = drift.save_html(snapshot, tmp_path / "r.html").read_text()
    assert "<html" in page.lower() and len(page) > 10_000
    empty = drift.save_html(None, tmp_path / "e.html", "no reference").read_text()
    assert "no reference" in empty


def test_no_monitored_columns_is_reported_not_raised(frames):
    reference, same, _ = frames
    snapshot, result = drift.feature_drift(reference, same, ["missing"])
    assert snapshot is None and result.n_columns == 0 and result.note


@pytest.mark.slow
def test_a_stationary_world_shows_no_drift_in_the_monitored_columns(tmp_path):
    """Guards the monitored-column rule: a new history-dependent feature would fail here.

    Synthetic data without drift; the features of August 1 against those of April 1 (the
    first cutoff with complete 90-day windows). History-dependent features do drift (that is
    why they are left out); the monitored ones must not.
    """
    from churn_kfp.data import datagen, sentiment, validation
    from churn_kfp.data.storage import LocalLandingZone
    from churn_kfp.learn import features

    zone = LocalLandingZone(tmp_path)
    datagen.generate(zone, n_customers=5000, n_months=8, seed=42, drift_from_month=None)
    clean = validation.ingest(zone)
    scored = sentiment.score_feedback(clean.feedback)

    def at(cutoff):
        return features.build_features(clean.transactions, cutoff, clean.customers, scored)

    reference, current = at("2025-04-01"), at("2025-08-01")
    _, everything = drift.feature_drift(
        reference, current, columns.feature_columns(reference.columns), prediction_column=None
    )
    assert {"lifetime_frequency", "tenure_days"} <= set(everything.drifted_columns)
    monitored = drift.monitored_columns(reference.columns)
    _, result = drift.feature_drift(reference, current, monitored, prediction_column=None)
    assert result.n_columns == len(monitored) >= 10
    assert result.drifted_columns == [], {
        c: round(r.score, 3) for c, r in result.columns.items() if r.drifted
    }
