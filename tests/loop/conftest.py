"""Hand-made data shared by the retraining-loop tests."""

import pandas as pd
import pytest

from churn_kfp.data.storage import LocalLandingZone, partition_key


@pytest.fixture
def zone_with_months(tmp_path):
    """Makes a landing zone holding one (pending) transactions partition per given month."""

    def make(months, year=2025):
        zone = LocalLandingZone(tmp_path / "zone")
        for month in months:
            zone.write_bytes(partition_key("transactions", year, month), b"customer_id\n")
        return zone

    return make


@pytest.fixture
def tx():
    """Purchases around a Feb 1 cutoff; with a 30-day window: A 0, B 1, C 1, D 0, E 0."""
    rows = [
        ("A", "2025-01-20"),
        ("A", "2025-02-10"),  # buys inside [Feb 1, Mar 3): stays
        ("B", "2025-01-25"),  # never again: churns
        ("C", "2025-01-05"),
        ("C", "2025-03-05"),  # buys only after the window: churns
        ("D", "2025-01-31"),
        ("D", "2025-02-01"),  # buys on the cutoff day itself: stays
        ("E", "2025-01-10"),
        ("E", "2025-03-02"),  # last day of the window: stays
        ("F", "2025-03-20"),
    ]
    return pd.DataFrame(
        {
            "customer_id": [r[0] for r in rows],
            "timestamp": pd.to_datetime([r[1] for r in rows]),
            "amount": 10.0,
        }
    )
