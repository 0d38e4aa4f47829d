"""Component ``build-features``: the cutoff plan and point-in-time features at each cutoff."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from kfp import dsl

from churn_kfp.components.features import build_features

# Data from 2024-01-01 to 2024-06-30. With a 30-day horizon on month starts the latest test
# cutoff whose window is observed is 06-01; validation is the latest cutoff whose window
# ends by it (05-01); training cutoffs lie one more month back (04-01, 03-01).
LOG = [
    *[("A", f"2024-{m:02d}-10", 10.0) for m in range(1, 7)],  # every month
    ("B", "2024-01-15", 20.0),
    ("B", "2024-02-20", 20.0),
    ("C", "2024-05-20", 30.0),
    ("Z", "2024-01-01", 5.0),  # bounds the data, never eligible with 45 days
    ("Z", "2024-06-30", 5.0),
]
# Eligible (a purchase within 45 days before the cutoff):
ELIGIBLE = {
    "2024-03-01": ["A", "B"],  # B 10 days before
    "2024-04-01": ["A", "B"],  # B 41 days before
    "2024-05-01": ["A"],  # B 71 days before
    "2024-06-01": ["A", "C"],
}
SPLITS = {
    "2024-03-01": "train",
    "2024-04-01": "train",
    "2024-05-01": "validation",
    "2024-06-01": "test",
}


def run(artifacts, purchases, customers=None, feedback=None, **parameters):
    features = artifacts.output(dsl.Dataset, "features")
    plan = artifacts.output(dsl.Artifact, "cutoff_plan")
    arguments = {
        "horizon_days": 30,
        "n_train_cutoffs": 2,
        "eligibility_days": 45,
        "windows": "30",
    }
    result = build_features.python_func(
        transactions=artifacts.dataset("transactions", purchases(LOG)),
        customers=artifacts.dataset(
            "customers", pd.DataFrame() if customers is None else customers
        ),
        scored_feedback=artifacts.dataset(
            "scored_feedback", pd.DataFrame() if feedback is None else feedback
        ),
        features=features,
        cutoff_plan=plan,
        **arguments | parameters,
    )
    return result, pd.read_parquet(features.path), json.loads(Path(plan.path).read_text()), features


def test_plans_the_cutoffs_and_builds_behaviour_features(artifacts, purchases):
    result, table, plan, features = run(artifacts, purchases)

    assert plan == {
        "train": ["2024-03-01", "2024-04-01"],
        "validation": "2024-05-01",
        "test": "2024-06-01",
        "horizon_days": 30,
        "refit": [],  # no matured cutoff lies outside the evaluation splits
        "refit_through": "2024-06-01",  # the served model also fits the test cutoff
    }
    got = {
        cutoff.date().isoformat(): sorted(rows["customer_id"])
        for cutoff, rows in table.groupby("cutoff")
    }
    assert got == ELIGIBLE
    for cutoff, split in SPLITS.items():
        assert (table.loc[table["cutoff"] == pd.Timestamp(cutoff), "split"] == split).all()
    at_test = table[table["cutoff"] == pd.Timestamp("2024-06-01")].set_index("customer_id")
    assert at_test.loc["A", "recency_days"] == pytest.approx(22)  # 05-10 -> 06-01
    assert at_test.loc["C", "recency_days"] == pytest.approx(12)  # 05-20 -> 06-01
    assert at_test.loc["A", "frequency_30d"] == 1 and at_test.loc["A", "monetary_30d"] == 10

    rows = sum(len(v) for v in ELIGIBLE.values())
    assert tuple(result) == ("behaviour", "2024-06-01", rows)
    assert features.metadata["rows"] == rows == len(table)


def test_optional_tables_add_their_feature_groups(artifacts, purchases):
    customers = pd.DataFrame(
        {
            "customer_id": ["A", "B", "C", "Z"],
            "signup_date": pd.to_datetime(["2023-01-01"] * 4),
            "age": [30.0, 40.0, 50.0, 60.0],
            "gender": ["F", "M", "X", "F"],
            "location": ["Leeds"] * 4,
            "segment": ["budget", "premium", "standard", "budget"],
        }
    )
    feedback = pd.DataFrame(
        {
            "customer_id": ["A", "B"],
            "timestamp": pd.to_datetime(["2024-02-01", "2024-02-21"]),
            "text": ["fine", "bad"],
            "sentiment": [0.2, -0.6],
            "sentiment_label": ["positive", "negative"],
        }
    )

    result, table, _, _ = run(artifacts, purchases, customers=customers, feedback=feedback)

    assert result.feature_groups == "behaviour,sentiment,demographics"
    assert {"age", "segment"} <= set(table.columns)
    b_at_march = table[
        (table["cutoff"] == pd.Timestamp("2024-03-01")) & (table["customer_id"] == "B")
    ]
    assert b_at_march["age"].item() == 40.0 and b_at_march["segment"].item() == "premium"


def test_a_given_test_cutoff_moves_the_plan(artifacts, purchases):
    result, _, plan, _ = run(artifacts, purchases, test_cutoff="2024-05-01")

    assert plan["train"] == ["2024-02-01", "2024-03-01"]
    assert (plan["validation"], plan["test"]) == ("2024-04-01", "2024-05-01")
    assert result.test_cutoff == "2024-05-01"


def test_a_test_cutoff_whose_window_is_not_observed_is_refused(artifacts, purchases):
    with pytest.raises(ValueError, match="not fully observed"):
        run(artifacts, purchases, test_cutoff="2024-06-15")
