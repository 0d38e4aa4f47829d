"""Point-in-time features."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from churn_kfp.core import columns
from churn_kfp.learn.duckdb_engine import build_feature_table_duckdb, build_features_duckdb
from churn_kfp.learn.features import (
    BEHAVIOUR,
    DEMOGRAPHICS,
    QUANTITY,
    SENTIMENT,
    TransactionIndex,
    build_feature_table,
    describe_feature_groups,
    feature_groups_used,
)
from churn_kfp.learn.features import (
    build_features as build_features_pandas,
)
from churn_kfp.learn.plan import CutoffPlan

T = pd.Timestamp
CUTOFF = T("2024-04-01")


def tx(rows: list[tuple[str, str, float, float]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": [r[0] for r in rows],
            "timestamp": pd.to_datetime([r[1] for r in rows], format="ISO8601"),
            "amount": [float(r[2]) for r in rows],
            "quantity": [float(r[3]) for r in rows],
        }
    )


@pytest.fixture
def tiny() -> pd.DataFrame:
    """Hand-made log; days before the 2024-04-01 cutoff noted per row."""
    return tx(
        [
            ("A", "2024-03-25", 10, 1),  # 7 days
            ("A", "2024-03-10", 20, 2),  # 22 days
            ("A", "2024-02-15", 35, 1),  # 46 days
            ("A", "2024-01-10", 40, 1),  # 82 days
            ("A", "2023-11-01", 50, 1),  # 152 days
            ("A", "2024-04-01", 999, 100),  # at the cutoff: excluded
            ("A", "2024-05-01", 999, 100),  # after the cutoff: excluded
            ("B", "2024-03-31 12:00", 5, 3),  # 0.5 days
            ("C", "2023-12-01", 7, 1),  # 122 days: not eligible with 90 days
            ("D", "2024-04-15", 8, 1),  # only after the cutoff
        ]
    )


@pytest.fixture(params=["pandas", "duckdb"])
def build_features(request):
    """The one-cutoff builder of each engine: the same tests hold for both."""
    return {"pandas": build_features_pandas, "duckdb": build_features_duckdb}[request.param]


def row(frame: pd.DataFrame, customer: str) -> pd.Series:
    return frame.set_index(columns.CUSTOMER_ID).loc[customer]


def test_window_arithmetic_by_hand(tiny, build_features):
    f = build_features(tiny, CUTOFF)
    assert list(f[columns.CUSTOMER_ID]) == ["A", "B"]
    a = row(f, "A")
    expected_a = {
        "recency_days": 7,
        "tenure_days": 152,
        "frequency_30d": 2,
        "frequency_60d": 3,
        "frequency_90d": 4,
        "monetary_30d": 30,
        "monetary_60d": 65,
        "monetary_90d": 105,
        "avg_basket_90d": 26.25,
        "frequency_trend_30d": 2 - 1,
        "monetary_trend_30d": 30 - 35,
        "mean_days_between_purchases": (152 - 7) / 4,
        "overdue_ratio": 7 / ((152 - 7) / 4),
        "lifetime_frequency": 5,
        "lifetime_monetary": 155,
        # purchase days 152, 82, 46, 22 and 7 days back: gaps 70, 36, 24, 15
        "purchase_gap_cv": np.std([70, 36, 24, 15]) / np.mean([70, 36, 24, 15]),
        "active_span_ratio": (152 - 7) / 152,
        "active_months_90d": 3,  # 30-day periods 0 (7, 22 days), 1 (46) and 2 (82)
        "decayed_frequency_30d": sum(0.5 ** (d / 30) for d in (7, 22, 46, 82, 152)),
        "decayed_monetary_90d": sum(
            a * 0.5 ** (d / 90) for d, a in ((7, 10), (22, 20), (46, 35), (82, 40), (152, 50))
        ),
        "quantity_90d": 5,
        "lifetime_quantity": 6,
    }
    for name, value in expected_a.items():
        assert a[name] == pytest.approx(value), name
    b = row(f, "B")
    assert b["recency_days"] == pytest.approx(0.5)
    assert b["tenure_days"] == pytest.approx(0.5)
    assert b["frequency_30d"] == 1 and b["monetary_90d"] == 5
    assert b["frequency_trend_30d"] == 1 and b["monetary_trend_30d"] == 5
    assert math.isnan(b["mean_days_between_purchases"])
    assert math.isnan(b["overdue_ratio"])
    assert math.isnan(b["purchase_gap_cv"])  # fewer than two gaps
    assert b["active_span_ratio"] == 0 and b["active_months_90d"] == 1
    assert (f[columns.CUTOFF] == CUTOFF).all()
    assert list(f.columns[:4]) == [
        columns.CUSTOMER_ID,
        columns.CUTOFF,
        "recency_days",
        "tenure_days",
    ]
    numeric = [c for c in f.columns if c not in (columns.CUSTOMER_ID, columns.CUTOFF)]
    assert all(f[c].dtype == np.float64 for c in numeric)
    assert f[columns.CUTOFF].dtype == "datetime64[ns]"


def test_window_includes_its_first_instant_and_excludes_the_cutoff(build_features):
    f = build_features(
        tx([("A", "2024-03-02", 1, 1), ("A", "2024-03-01 23:59:59", 2, 1)]),
        CUTOFF,
    )
    # 2024-03-02 is exactly 30 days before the cutoff: inside the 30-day window.
    assert row(f, "A")["monetary_30d"] == 1
    assert row(f, "A")["monetary_60d"] == 3


def test_purchase_days_and_gaps_are_point_in_time(build_features):
    log = tx(
        [
            ("A", "2024-03-01 09:00", 1, 1),
            ("A", "2024-03-01 17:00", 1, 1),  # same day: one purchase day
            ("A", "2024-03-11 10:00", 1, 1),  # gap 10 days
            ("A", "2024-03-31 08:00", 1, 1),  # gap 20 days
            ("A", "2024-03-31 20:00", 1, 1),  # after a mid-day cutoff
        ]
    )
    a = row(build_features(log, "2024-03-31 12:00"), "A")
    assert a["purchase_gap_cv"] == pytest.approx(5 / 15)  # gaps 10, 20
    assert a["lifetime_frequency"] == 4
    before = row(build_features(log, "2024-03-31"), "A")
    assert math.isnan(before["purchase_gap_cv"])  # a single gap (10 days)
    # (last - first) / (cutoff - first) = 10 days 1 hour / 29 days 15 hours
    assert before["active_span_ratio"] == pytest.approx(241 / 711)


def test_eligibility(tiny, build_features):
    assert "C" not in set(build_features(tiny, CUTOFF)[columns.CUSTOMER_ID])
    wide = build_features(tiny, CUTOFF, eligibility_days=180)
    assert list(wide[columns.CUSTOMER_ID]) == ["A", "B", "C"]
    c = row(wide, "C")
    assert c["frequency_90d"] == 0 and math.isnan(c["avg_basket_90d"])
    assert c["recency_days"] == 122
    narrow = build_features(tiny, CUTOFF, eligibility_days=1)
    assert list(narrow[columns.CUSTOMER_ID]) == ["B"]
    # nobody bought before an early cutoff
    assert build_features(tiny, "2023-01-01").empty


def test_point_in_time_future_rows_change_nothing(tiny, build_features):
    base = build_features(tiny, CUTOFF)
    future = tx(
        [
            ("A", "2024-04-01", 500, 9),
            ("B", "2024-04-01 00:00:01", 500, 9),
            ("C", "2024-06-01", 500, 9),
            ("E", "2024-04-02", 500, 9),
        ]
    )
    more = build_features(pd.concat([tiny, future], ignore_index=True), CUTOFF)
    pd.testing.assert_frame_equal(base, more)


def test_point_in_time_moving_a_row_before_the_cutoff_changes_features(tiny, build_features):
    moved = tiny.copy()
    at_cutoff = moved["timestamp"] == CUTOFF
    moved.loc[at_cutoff, "timestamp"] = CUTOFF - pd.Timedelta(seconds=1)
    a_before, a_after = (
        row(build_features(tiny, CUTOFF), "A"),
        row(build_features(moved, CUTOFF), "A"),
    )
    assert a_after["frequency_30d"] == a_before["frequency_30d"] + 1
    assert a_after["monetary_30d"] == a_before["monetary_30d"] + 999
    assert a_after["recency_days"] == pytest.approx(1 / 86_400)


def test_input_order_and_index_reuse_do_not_matter(tiny):
    shuffled = tiny.sample(frac=1, random_state=3).reset_index(drop=True)
    index = TransactionIndex(tiny)
    pd.testing.assert_frame_equal(
        build_features_pandas(tiny, CUTOFF), build_features_pandas(shuffled, CUTOFF)
    )
    pd.testing.assert_frame_equal(
        build_features_pandas(tiny, CUTOFF), build_features_pandas(index, CUTOFF)
    )


def test_missing_optional_tables_produce_behaviour_only(tiny, build_features):
    no_qty = tiny.drop(columns="quantity")
    f = build_features(no_qty, CUTOFF)
    assert feature_groups_used(f) == [BEHAVIOUR]
    assert f.attrs["feature_groups"] == [BEHAVIOUR]
    assert describe_feature_groups(feature_groups_used(f)) == "behaviour only"
    assert not [c for c in f.columns if "quantity" in c or "sentiment" in c]
    assert feature_groups_used(build_features(tiny, CUTOFF)) == [BEHAVIOUR, QUANTITY]


def test_sentiment_features(tiny, build_features):
    feedback = pd.DataFrame(
        {
            "customer_id": ["A", "A", "A", "A", "A", "Z"],
            "timestamp": pd.to_datetime(
                ["2024-03-20", "2024-03-28", "2024-03-30", "2023-12-01", "2024-04-01", "2024-03-30"]
            ),
            "text": ["ok"] * 6,
            "sentiment": [0.5, -0.6, np.nan, 0.9, -1.0, -1.0],
        }
    )
    f = build_features(tiny, CUTOFF, feedback=feedback)
    a, b = row(f, "A"), row(f, "B")
    assert a["sentiment_mean_90d"] == pytest.approx(-0.05)
    assert a["sentiment_last"] == pytest.approx(-0.6)  # the later NaN score is skipped
    assert a["negative_feedback_90d"] == 1
    assert a["feedback_count_90d"] == 3
    assert a["days_since_feedback"] == 2
    assert math.isnan(b["sentiment_mean_90d"]) and math.isnan(b["sentiment_last"])
    assert b["feedback_count_90d"] == 0 and math.isnan(b["days_since_feedback"])
    assert feature_groups_used(f) == [BEHAVIOUR, QUANTITY, SENTIMENT]
    # an empty feedback table still yields the (all-missing) sentiment columns
    empty = build_features(tiny, CUTOFF, feedback=feedback.iloc[:0])
    assert empty["sentiment_last"].isna().all()
    with pytest.raises(ValueError, match="sentiment"):
        build_features(tiny, CUTOFF, feedback=feedback.drop(columns="sentiment"))


def test_demographics(tiny, build_features):
    customers = pd.DataFrame(
        {
            "customer_id": ["A", "B", "C"],
            "signup_date": pd.to_datetime(["2023-10-01", "2024-05-01", None]),
            "age": [30, np.nan, 41],
            "gender": ["F", None, "M"],
            "location": ["X", "Y", "Z"],
            "segment": ["gold", "basic", "basic"],
        }
    )
    f = build_features(tiny, CUTOFF, customers=customers)
    a, b = row(f, "A"), row(f, "B")
    assert a["customer_age_days"] == 183
    assert a["tenure_days"] == 183  # signed up before the first purchase
    assert math.isnan(b["customer_age_days"])  # signup after the cutoff: unknown
    assert b["tenure_days"] == pytest.approx(0.5)
    assert a["age"] == 30 and math.isnan(b["age"])
    assert a["gender"] == "F" and pd.isna(b["gender"])
    for name in ("gender", "location", "segment"):
        assert f[name].dtype == object
    assert f["age"].dtype == np.float64
    assert feature_groups_used(f) == [BEHAVIOUR, QUANTITY, DEMOGRAPHICS]
    only_segment = build_features(tiny, CUTOFF, customers=customers[["customer_id", "segment"]])
    demo = [c for c in only_segment.columns if c in ("customer_age_days", "age", "gender")]
    assert demo == [] and "segment" in only_segment


def test_missing_required_column(build_features):
    with pytest.raises(ValueError, match="amount"):
        build_features(pd.DataFrame({"customer_id": ["a"], "timestamp": [CUTOFF]}), CUTOFF)


# ---------------------------------------------------------------------------------------
# Vectorized result == a plain reference implementation
# ---------------------------------------------------------------------------------------


def reference_features(transactions, feedback, cutoff, windows, eligibility_days):
    """Slow, obvious per-customer loops."""
    c = pd.Timestamp(cutoff)
    out = []
    for cid in sorted(transactions["customer_id"].unique()):
        mine = transactions[(transactions["customer_id"] == cid) & (transactions["timestamp"] < c)]
        times = list(mine["timestamp"])
        amounts = list(mine["amount"].fillna(0))
        qty = list(mine["quantity"].fillna(0))
        if not any(t >= c - pd.Timedelta(days=eligibility_days) for t in times):
            continue

        def in_window(t, days, c=c):
            return c - pd.Timedelta(days=days) <= t < c

        r = {"customer_id": cid}
        r["recency_days"] = (c - max(times)).total_seconds() / 86_400
        r["tenure_days"] = (c - min(times)).total_seconds() / 86_400
        for w in windows:
            r[f"frequency_{w}d"] = sum(1 for t in times if in_window(t, w))
            r[f"monetary_{w}d"] = sum(
                a for t, a in zip(times, amounts, strict=True) if in_window(t, w)
            )
        big, small = max(windows), min(windows)
        n_big = r[f"frequency_{big}d"]
        r[f"avg_basket_{big}d"] = r[f"monetary_{big}d"] / n_big if n_big else np.nan
        prev = [
            i
            for i, t in enumerate(times)
            if c - 2 * pd.Timedelta(days=small) <= t < c - pd.Timedelta(days=small)
        ]
        r[f"frequency_trend_{small}d"] = r[f"frequency_{small}d"] - len(prev)
        r[f"monetary_trend_{small}d"] = r[f"monetary_{small}d"] - sum(amounts[i] for i in prev)
        gaps = np.diff(sorted(t.value for t in times)) / 86_400e9
        r["mean_days_between_purchases"] = gaps.mean() if len(gaps) else np.nan
        mean_gap = r["mean_days_between_purchases"]
        r["overdue_ratio"] = r["recency_days"] / mean_gap if mean_gap > 0 else np.nan
        r["lifetime_frequency"] = len(times)
        r["lifetime_monetary"] = sum(amounts)
        days = sorted({t.normalize() for t in times})
        day_gaps = [(b - a).days for a, b in zip(days[:-1], days[1:], strict=True)]
        r["purchase_gap_cv"] = (
            np.std(day_gaps) / np.mean(day_gaps) if len(day_gaps) >= 2 else np.nan
        )
        r["active_span_ratio"] = (max(times) - min(times)) / (c - min(times))
        period = pd.Timedelta(days=30)
        r[f"active_months_{big}d"] = sum(
            1
            for k in range(math.ceil(big / 30))
            if any(in_window(t, big) and c - (k + 1) * period <= t < c - k * period for t in times)
        )
        for half_life in (30, 90):
            weights = [0.5 ** ((c - t).total_seconds() / 86_400 / half_life) for t in times]
            r[f"decayed_frequency_{half_life}d"] = sum(weights)
            r[f"decayed_monetary_{half_life}d"] = sum(
                w * a for w, a in zip(weights, amounts, strict=True)
            )
        r[f"quantity_{big}d"] = sum(q for t, q in zip(times, qty, strict=True) if in_window(t, big))
        r["lifetime_quantity"] = sum(qty)

        fb = feedback[(feedback["customer_id"] == cid) & (feedback["timestamp"] < c)]
        fb = fb.sort_values("timestamp", kind="stable")
        recent = fb[fb["timestamp"] >= c - pd.Timedelta(days=big)]
        scored = recent["sentiment"].dropna()
        r[f"sentiment_mean_{big}d"] = scored.mean() if len(scored) else np.nan
        all_scored = fb["sentiment"].dropna()
        r["sentiment_last"] = all_scored.iloc[-1] if len(all_scored) else np.nan
        r[f"negative_feedback_{big}d"] = int((scored < -0.05).sum())
        r[f"feedback_count_{big}d"] = len(recent)
        r["days_since_feedback"] = (
            (c - fb["timestamp"].max()).total_seconds() / 86_400 if len(fb) else np.nan
        )
        out.append(r)
    return pd.DataFrame(out)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_vectorized_equals_reference(seed, build_features):
    rng = np.random.default_rng(seed)
    n, customers = 1500, 60
    cutoff = T("2024-06-01")
    # half the timestamps on whole days (hitting window edges exactly), half anywhere
    whole_days = cutoff - pd.to_timedelta(rng.integers(-20, 200, n // 2), unit="D")
    anywhere = cutoff - pd.to_timedelta(rng.integers(-20 * 86_400, 200 * 86_400, n - n // 2), "s")
    amounts = np.round(rng.gamma(2.0, 20.0, n), 2)
    amounts[rng.random(n) < 0.05] = np.nan
    transactions = pd.DataFrame(
        {
            "customer_id": [f"c{i:03d}" for i in rng.integers(0, customers, n)],
            "timestamp": np.concatenate([whole_days.values, anywhere.values]),
            "amount": amounts,
            "quantity": rng.integers(1, 4, n).astype(float),
        }
    )
    m = 300
    feedback = pd.DataFrame(
        {
            "customer_id": [f"c{i:03d}" for i in rng.integers(0, customers + 5, m)],
            "timestamp": cutoff - pd.to_timedelta(rng.integers(-10, 150, m), unit="D"),
            "text": "x",
            "sentiment": np.where(rng.random(m) < 0.1, np.nan, rng.uniform(-1, 1, m)),
        }
    )
    windows, eligibility = (14, 30, 45), 60
    got = build_features(
        transactions, cutoff, feedback=feedback, windows=windows, eligibility_days=eligibility
    )
    want = reference_features(transactions, feedback, cutoff, windows, eligibility)
    assert len(got) > 10
    assert list(got[columns.CUSTOMER_ID]) == list(want["customer_id"])
    assert set(got.columns) - {columns.CUTOFF} == set(want.columns)
    for name in want.columns[1:]:
        np.testing.assert_allclose(
            got[name].to_numpy(),
            want[name].to_numpy(dtype=float),
            rtol=1e-9,
            atol=1e-9,
            err_msg=name,
        )


def test_build_feature_table_stacks_cutoffs(tiny, build_features):
    plan = CutoffPlan(
        train=[T("2024-02-01"), T("2024-03-01")],
        validation=T("2024-04-01"),
        test=T("2024-05-01"),
        horizon_days=30,
    )
    table = build_feature_table(tiny, plan)
    pd.testing.assert_frame_equal(build_feature_table_duckdb(tiny, plan), table)
    assert list(table.columns[:3]) == [columns.CUSTOMER_ID, columns.CUTOFF, columns.SPLIT]
    assert table.attrs["feature_groups"] == [BEHAVIOUR, QUANTITY]
    for cutoff in plan.all_cutoffs():
        part = table[table[columns.CUTOFF] == cutoff]
        assert (part[columns.SPLIT] == plan.split_of(cutoff)).all()
        alone = build_features(tiny, cutoff)
        pd.testing.assert_frame_equal(
            part.drop(columns=columns.SPLIT).reset_index(drop=True), alone, check_like=False
        )
