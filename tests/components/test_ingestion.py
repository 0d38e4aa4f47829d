"""Component ``ingest-and-validate``: landing-zone files in, clean Parquet tables out."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from kfp import dsl

from churn_kfp.components.ingestion import ingest_and_validate

JANUARY = """customer_id,timestamp,amount
A,2025-01-05 10:00:00,10.0
B,2025-01-06 11:00:00,20.0
A,2025-01-05 10:00:00,10.0
,2025-01-07 12:00:00,5.0
C,2025-01-20 09:30:00,30.0
"""  # the third row repeats the first; the fourth has no customer: both are dropped
FEBRUARY = """customer_id,timestamp,amount
A,2025-02-03 08:00:00,15.0
C,2025-02-25 18:45:00,25.0
"""
CUSTOMERS = "customer_id,segment\nA,retail\nB,smb\nC,retail\n"
FEEDBACK = "customer_id,timestamp,text\nA,2025-01-06 09:00:00,Great service\n"


def landing_zone(root: Path, with_optional_tables: bool = True) -> Path:
    files = {
        "raw/sales/year=2025/month=01/sales_2025_01.csv": JANUARY,
        "raw/sales/year=2025/month=02/sales_2025_02.csv": FEBRUARY,
    }
    if with_optional_tables:
        files["raw/customers/customers.csv"] = CUSTOMERS
        files["raw/feedback/year=2025/month=01/feedback_raw_2025_01.csv"] = FEEDBACK
    for key, text in files.items():
        (root / key).parent.mkdir(parents=True, exist_ok=True)
        (root / key).write_text(text)
    return root


def run(artifacts, zone: Path, until: str = ""):
    outputs = {
        "transactions": artifacts.output(dsl.Dataset, "transactions"),
        "customers": artifacts.output(dsl.Dataset, "customers"),
        "feedback": artifacts.output(dsl.Dataset, "feedback"),
        "quality_report": artifacts.output(dsl.Artifact, "quality_report"),
        "quality_metrics": artifacts.output(dsl.Metrics, "quality_metrics"),
    }
    result = ingest_and_validate.python_func(landing_zone=str(zone), until=until, **outputs)
    return result, outputs


def test_cleans_every_table_and_scores_the_defects(artifacts, tmp_path):
    result, out = run(artifacts, landing_zone(tmp_path / "landing"))

    tx = pd.read_parquet(out["transactions"].path)
    assert list(tx["customer_id"]) == ["A", "B", "C", "A", "C"]  # by time stamp
    assert list(tx["amount"]) == [10.0, 20.0, 30.0, 15.0, 25.0]
    assert str(tx["timestamp"].dtype) == "datetime64[ns]"
    assert out["transactions"].metadata["rows"] == 5
    customers = pd.read_parquet(out["customers"].path)
    assert sorted(customers["customer_id"]) == ["A", "B", "C"]
    assert out["customers"].metadata["rows"] == 3
    feedback = pd.read_parquet(out["feedback"].path)
    assert list(feedback["text"]) == ["Great service"]
    assert out["feedback"].metadata["rows"] == 1

    # quality = 1 - sum(w_t * d_t) / sum(w_t), d_t = removed rows' cells / cells read:
    # transactions lost 2 of 7 rows (3 columns each); customers and feedback are clean.
    expected_score = 1 - (0.6 * (2 * 3) / (7 * 3)) / (0.6 + 0.2 + 0.2)
    assert result.quality_score == pytest.approx(expected_score, abs=1e-6)
    assert out["quality_metrics"].metadata == {
        "quality_score": round(expected_score, 4),
        "transactions_rows": 5,
        "files": 4,
    }
    report = json.loads(Path(out["quality_report"].path).read_text())
    assert report["transactions"]["rows_read"] == 7
    assert report["transactions"]["rows_kept"] == 5
    assert report["transactions"]["duplicates_removed"] == 1
    assert sum(report["transactions"]["dropped"].values()) == 1
    assert report["periods"] == ["2025-01", "2025-02"]

    assert result.data_start == "2025-01-05T10:00:00"
    assert result.data_end == "2025-02-25T18:45:00"
    assert result.has_customers is True and result.has_feedback is True


def test_until_and_missing_optional_tables(artifacts, tmp_path):
    result, out = run(artifacts, landing_zone(tmp_path / "landing", False), until="2025-01")

    tx = pd.read_parquet(out["transactions"].path)
    assert list(tx["customer_id"]) == ["A", "B", "C"]  # February is after `until`
    for name in ("customers", "feedback"):
        assert pd.read_parquet(out[name].path).empty
        assert out[name].metadata["rows"] == 0
    assert result.has_customers is False and result.has_feedback is False
    assert result.data_end == "2025-01-20T09:30:00"
    # only transactions have rows: 2 of 5 rows removed
    assert result.quality_score == pytest.approx(1 - 2 / 5, abs=1e-6)
    assert out["quality_metrics"].metadata["files"] == 1


def test_empty_landing_zone_fails_with_a_message(artifacts, tmp_path):
    (tmp_path / "landing").mkdir()
    with pytest.raises(ValueError, match="empty input: no transaction files"):
        run(artifacts, tmp_path / "landing")
