"""Churn labels, label maturity and label quality."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from churn_kfp.core import columns
from churn_kfp.learn.features import build_feature_table, build_features, index_transactions
from churn_kfp.learn.labels import (
    ImmatureLabelError,
    LabelQualityError,
    check_label_quality,
    label_churn,
    label_report,
    read_label_transactions,
)
from churn_kfp.learn.plan import plan_cutoffs

T = pd.Timestamp
CUTOFF = T("2024-04-01")


def tx(rows):
    return pd.DataFrame(
        {
            "customer_id": [r[0] for r in rows],
            "timestamp": pd.to_datetime([r[1] for r in rows], format="ISO8601"),
            "amount": [10.0] * len(rows),
        }
    )


@pytest.fixture
def log() -> pd.DataFrame:
    return tx(
        [
            ("A", "2024-03-20"),
            ("A", "2024-04-30 23:59:59"),  # last second of the 30-day window: stays
            ("B", "2024-03-20"),
            ("B", "2024-05-01"),  # exactly cutoff + 30 days: outside the window -> churn
            ("C", "2024-03-20"),
            ("C", "2024-04-01"),  # at the cutoff: inside the window
            ("D", "2024-03-20"),  # never again
            ("E", "2024-03-20"),
            ("E", "2024-03-31"),  # only before the cutoff
        ]
    )


def test_reading_only_the_label_windows_gives_the_same_labels(log, tmp_path):
    path = tmp_path / "transactions.parquet"
    whole = pd.concat([log, tx([("F", "2024-06-15 08:00")])], ignore_index=True)
    whole.to_parquet(path, index=False)
    features = build_features(log, CUTOFF)
    frame, data_end = read_label_transactions(path, [CUTOFF], horizon_days=30)
    assert data_end == T("2024-06-15 08:00")  # the latest of all rows, read or not
    # [cutoff, cutoff + 30 days): C at the cutoff and A's last second in; B on day 30 out
    assert sorted(frame[columns.CUSTOMER_ID]) == ["A", "C"]
    pd.testing.assert_frame_equal(
        label_churn(features, frame, 30, data_end), label_churn(features, whole, 30, data_end)
    )
    nothing, same_end = read_label_transactions(path, [], horizon_days=30)
    assert nothing.empty and list(nothing.columns) == list(frame.columns)
    assert same_end == data_end
    whole.iloc[:0].to_parquet(path, index=False)
    with pytest.raises(ValueError, match="no transactions in"):
        read_label_transactions(path, [CUTOFF], horizon_days=30)


def test_labels_by_hand(log):
    features = build_features(log, CUTOFF)
    labelled = label_churn(features, log, horizon_days=30, data_end="2024-05-31")
    got = dict(zip(labelled[columns.CUSTOMER_ID], labelled[columns.LABEL], strict=True))
    assert got == {"A": 0, "B": 1, "C": 0, "D": 1, "E": 1}
    assert labelled[columns.LABEL].dtype == np.int64
    # the input is not modified and the other columns are kept
    assert columns.LABEL not in features
    pd.testing.assert_frame_equal(labelled.drop(columns=columns.LABEL), features)


@pytest.mark.parametrize("form", ["frame", "id_and_time_only", "index"])
def test_label_churn_matches_a_plain_loop(form):
    rng = np.random.default_rng(7)
    n = 3000
    log = pd.DataFrame(
        {
            "customer_id": [f"c{i}" for i in rng.integers(0, 150, n)],
            "timestamp": T("2024-01-01") + pd.to_timedelta(rng.integers(0, 240, n), unit="D"),
            "amount": 1.0,
        }
    )
    plan = plan_cutoffs("2024-01-01", "2024-08-28", horizon_days=30, n_train_cutoffs=2)
    table = build_feature_table(log, plan)
    given = {
        "frame": log,
        "id_and_time_only": log[["customer_id", "timestamp"]],
        "index": index_transactions(log),
    }[form]
    labelled = label_churn(table, given, 30, "2024-08-28")
    assert set(labelled[columns.LABEL]) == {0, 1}
    times_of = {cid: list(group) for cid, group in log.groupby("customer_id")["timestamp"]}
    for (cid, cutoff), label in zip(
        zip(labelled[columns.CUSTOMER_ID], labelled[columns.CUTOFF], strict=True),
        labelled[columns.LABEL],
        strict=True,
    ):
        mine = times_of[cid]
        bought = any(cutoff <= t < cutoff + pd.Timedelta(days=30) for t in mine)
        assert label == int(not bought)


def test_transactions_without_ids_or_times_are_refused(log):
    features = build_features(log, CUTOFF)
    with pytest.raises(ValueError, match=r"lack column\(s\) \['timestamp'\]"):
        label_churn(features, log.drop(columns="timestamp"), 30, "2024-05-31")


def test_immature_labels_are_refused(log):
    features = build_features(log, CUTOFF)
    # 2024-04-01 + 30 days = 2024-05-01: data through 2024-04-30 are exactly enough
    label_churn(features, log, horizon_days=30, data_end="2024-04-30")
    with pytest.raises(ImmatureLabelError) as info:
        label_churn(features, log, horizon_days=30, data_end="2024-04-29")
    message = str(info.value)
    assert "2024-04-01" in message and "30-day" in message and "2024-04-29" in message
    assert isinstance(info.value, ValueError)


def test_label_report_and_quality():
    rows = []
    for split, cutoff, churn in [
        ("train", "2024-01-01", [1] * 30 + [0] * 70),
        ("validation", "2024-02-01", [1] * 20 + [0] * 30),
        ("test", "2024-03-01", [1] * 10 + [0] * 40),
    ]:
        for i, label in enumerate(churn):
            rows.append((f"c{i}", T(cutoff), split, label))
    labelled = pd.DataFrame(
        rows, columns=[columns.CUSTOMER_ID, columns.CUTOFF, columns.SPLIT, columns.LABEL]
    )
    report = check_label_quality(labelled)
    assert report["splits"]["train"] == {
        "rows": 100,
        "positives": 30,
        "negatives": 70,
        "churn_rate": 0.3,
    }
    assert report["overall"]["rows"] == 200 and report["overall"]["positives"] == 60
    assert [c["cutoff"] for c in report["cutoffs"]] == ["2024-01-01", "2024-02-01", "2024-03-01"]
    assert report["cutoffs"][2]["split"] == "test"
    assert report == label_report(labelled)

    single = labelled.copy()
    single.loc[single[columns.SPLIT] == "validation", columns.LABEL] = 1
    with pytest.raises(LabelQualityError, match="'validation' has a single class"):
        check_label_quality(single)

    few = labelled[~((labelled[columns.SPLIT] == "test") & (labelled[columns.LABEL] == 1))]
    few = pd.concat([few, labelled[(labelled[columns.SPLIT] == "test")].head(3)])
    with pytest.raises(LabelQualityError, match="'test' has 3 churner"):
        check_label_quality(few)
    check_label_quality(few, min_positives=3)

    with pytest.raises(LabelQualityError, match="'train' has churn rate 0.3000"):
        check_label_quality(labelled, max_rate=0.25)


def test_cdnow_reference_counts(cdnow_path):
    """Reproduces the reference counts in shared/data/cdnow/README.md.

    The reference drops the 80 zero-dollar lines; eligibility 365 days, horizon 90 days.
    """
    raw = pd.read_csv(cdnow_path, sep=r"\s+", dtype=str)
    log = pd.DataFrame(
        {
            "customer_id": raw["customer_id"],
            "timestamp": pd.to_datetime(raw["date"], format="%Y%m%d"),
            "quantity": raw["number_of_cds"].astype(float),
            "amount": raw["dollar_value"].astype(float),
        }
    )
    log = log[log["amount"] > 0]
    features = build_features(log, "1998-03-01", eligibility_days=365)
    labelled = label_churn(features, log, horizon_days=90, data_end="1998-06-30")
    assert len(labelled) == 13_979
    assert labelled[columns.LABEL].mean() == pytest.approx(0.77, abs=0.005)
