"""Component ``generate-data``: a synthetic customer base written into the landing zone."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from churn_kfp.components.data_generation import generate_data


def generate(landing_zone: str, **overrides) -> dict:
    arguments = {"n_customers": 30, "n_months": 2, "start_month": "2025-03", "seed": 7}
    return json.loads(generate_data.python_func(landing_zone=landing_zone, **arguments | overrides))


def files_under(root: Path) -> dict[str, bytes]:
    """The data files under ``raw/`` (not the generator's manifest, not the lock file)."""
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("raw/**/*") if p.is_file()}


def test_writes_monthly_partitions_and_says_what_it_wrote(tmp_path):
    zone = tmp_path / "landing"

    result = generate(str(zone))

    expected_keys = [
        "raw/customers/customers.csv",
        "raw/sales/year=2025/month=03/sales_2025_03.csv",
        "raw/sales/year=2025/month=04/sales_2025_04.csv",
        "raw/feedback/year=2025/month=03/feedback_raw_2025_03.csv",
        "raw/feedback/year=2025/month=04/feedback_raw_2025_04.csv",
    ]
    assert sorted(files_under(zone)) == sorted(expected_keys)
    assert result["generated"] is True
    assert result["months"] == ["2025-03", "2025-04"]
    assert result["files_written"] == len(expected_keys)
    assert (result["n_customers"], result["seed"], result["start"]) == (30, 7, "2025-03")

    customers = pd.read_csv(zone / expected_keys[0])
    assert len(customers) == 30 == result["rows"]["customers"]  # signed up later included
    assert customers["customer_id"].is_unique
    sales_rows = feedback_rows = 0
    for month in ("03", "04"):
        sales = pd.read_csv(zone / f"raw/sales/year=2025/month={month}/sales_2025_{month}.csv")
        feedback = pd.read_csv(
            zone / f"raw/feedback/year=2025/month={month}/feedback_raw_2025_{month}.csv"
        )
        for frame in (sales, feedback):
            assert (frame["timestamp"].str.slice(0, 7) == f"2025-{month}").all()
        sales_rows += len(sales)
        feedback_rows += len(feedback)
    assert sales_rows == result["rows"]["transactions"] > 0
    assert feedback_rows == result["rows"]["feedback"]


def test_the_same_seed_writes_the_same_bytes(tmp_path):
    generate(str(tmp_path / "a"))
    generate(str(tmp_path / "b"))
    generate(str(tmp_path / "c"), seed=8)

    first, again, other = (files_under(tmp_path / name) for name in "abc")
    assert first == again
    sales = "raw/sales/year=2025/month=03/sales_2025_03.csv"
    assert first[sales] != other[sales]


def test_disabled_generation_writes_nothing(tmp_path):
    zone = tmp_path / "landing"

    result = generate(str(zone), enabled=False)

    assert result == {"generated": False, "reason": "generation disabled"}
    assert not zone.exists()


def test_empty_landing_zone_means_churn_landing_zone(tmp_path, monkeypatch):
    monkeypatch.setenv("CHURN_LANDING_ZONE", str(tmp_path / "from-env"))

    result = generate("", n_months=1, drift_from_month=0)

    assert result["landing_zone"] == str(tmp_path / "from-env")
    assert result["drift_from_month"] is None  # 0 means no drift
    assert (tmp_path / "from-env/raw/sales/year=2025/month=03/sales_2025_03.csv").is_file()
