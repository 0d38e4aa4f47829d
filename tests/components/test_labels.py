"""Component ``label-churn``: churn = no purchase within the horizon after the cutoff."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from kfp import dsl

from churn_kfp.components.labels import label_churn

CUTOFFS = {"train": "2024-03-01", "validation": "2024-04-01", "test": "2024-05-01"}
PER_SPLIT = 10


def scenario(purchases) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, int]]:
    """Feature rows and purchases where customer ``i`` of each split churns iff ``i`` is odd.

    Edge cases: customer 0 buys exactly at the cutoff (inside the window), customer 1
    exactly ``cutoff + 30 days`` (outside it: churn), customer 3 the day before the cutoff.
    """
    rows, log, expected = [], [], {}
    for split, day in CUTOFFS.items():
        cutoff = pd.Timestamp(day)
        for i in range(PER_SPLIT):
            customer = f"{split[:2]}{i}"
            rows.append({"customer_id": customer, "cutoff": cutoff, "split": split, "x": 1.0})
            expected[customer] = i % 2
            if i == 0:
                log.append((customer, str(cutoff), 10.0))
            elif i == 1:
                log.append((customer, str(cutoff + pd.Timedelta(days=30)), 10.0))
            elif i == 3:
                log.append((customer, str(cutoff - pd.Timedelta(days=1)), 10.0))
            elif i % 2 == 0:
                log.append((customer, str(cutoff + pd.Timedelta(days=i + 1)), 10.0))
    return pd.DataFrame(rows), purchases(log), expected


def run(artifacts, features: pd.DataFrame, transactions: pd.DataFrame, horizon_days: int = 30):
    outputs = {
        "labelled": artifacts.output(dsl.Dataset, "labelled"),
        "label_report": artifacts.output(dsl.Artifact, "label_report"),
        "label_metrics": artifacts.output(dsl.Metrics, "label_metrics"),
    }
    label_churn.python_func(
        features=artifacts.dataset("features", features),
        transactions=artifacts.dataset("transactions", transactions),
        horizon_days=horizon_days,
        **outputs,
    )
    return outputs


def test_labels_every_cutoff_and_reports_the_balance(artifacts, purchases):
    features, transactions, expected = scenario(purchases)

    out = run(artifacts, features, transactions)

    labelled = pd.read_parquet(out["labelled"].path)
    assert dict(zip(labelled["customer_id"], labelled["churn"], strict=True)) == expected
    assert list(labelled.columns[:4]) == ["customer_id", "cutoff", "split", "x"]
    assert out["labelled"].metadata["rows"] == 3 * PER_SPLIT
    report = json.loads(Path(out["label_report"].path).read_text())
    for split in CUTOFFS:
        assert report["splits"][split] == {
            "rows": PER_SPLIT,
            "positives": PER_SPLIT // 2,
            "negatives": PER_SPLIT // 2,
            "churn_rate": 0.5,
        }
    assert out["label_metrics"].metadata == {
        f"{split}_{name}": value
        for split in CUTOFFS
        for name, value in (("churn_rate", 0.5), ("rows", PER_SPLIT))
    }


def test_a_window_the_data_do_not_cover_is_refused(artifacts, purchases):
    features, transactions, _ = scenario(purchases)  # data end 2024-05-31
    with pytest.raises(ValueError, match="cannot label cutoff"):
        run(artifacts, features, transactions, horizon_days=45)


def test_a_split_with_a_single_class_is_refused(artifacts, purchases):
    features, transactions, _ = scenario(purchases)
    test_rows = features[features["split"] == "test"]
    everyone_buys = purchases([(c, "2024-05-10", 1.0) for c in test_rows["customer_id"]])

    with pytest.raises(ValueError, match="split 'test' has a single class"):
        run(artifacts, features, pd.concat([transactions, everyone_buys], ignore_index=True))
