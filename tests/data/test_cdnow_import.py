"""The shipped CDNOW mapping imports the real CDNOW log as its README describes it.

The data is not in this repository: it is read from ``../shared/data/cdnow/`` beside the
checkout (or ``$CHURN_SHARED_DIR/data/cdnow/``) by the ``cdnow_path`` fixture. A missing
file fails the test with the places it was looked for: a silent skip would hide that the
example is untested.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

from churn_kfp.data.importer.importing import import_file
from churn_kfp.data.importer.mapping import load_mapping
from churn_kfp.data.storage import LocalLandingZone, discover_partitions, read_frame

pytestmark = pytest.mark.slow  # imports the real 70,000-line log (seconds, not milliseconds)

REPO = Path(__file__).resolve().parents[2]
MAPPING = REPO / "examples/cdnow/mapping.yaml"
SHA256 = "eff6889ed364c5199d6eacbbeb7a6d559971df4406ac876f322c373f00a072ef"


@dataclass
class RawCounts:
    """What the raw file holds, counted here with plain Python (not by the importer)."""

    rows: int
    customers: int
    first_date: str
    last_date: str
    zero_amount: int
    duplicate_lines: int
    kept_customers: int
    kept_rows_by_month: dict[str, int]
    first_line: tuple[str, ...]


@pytest.fixture(scope="module")
def raw(cdnow_path) -> RawCounts:
    """Whitespace-separated lines ``id yyyymmdd cds dollars`` under one header line."""
    lines = [line.split() for line in cdnow_path.read_text().splitlines() if line.strip()]
    assert lines[0] == ["customer_id", "date", "number_of_cds", "dollar_value"]
    rows = [tuple(fields) for fields in lines[1:]]
    paid = [row for row in rows if float(row[3]) != 0]
    kept = list(dict.fromkeys(paid))  # a repeated whole line counts once
    months = Counter(f"{row[1][:4]}-{row[1][4:6]}" for row in kept)
    return RawCounts(
        rows=len(rows),
        customers=len({row[0] for row in rows}),
        first_date=min(row[1] for row in rows),
        last_date=max(row[1] for row in rows),
        zero_amount=len(rows) - len(paid),
        duplicate_lines=len(paid) - len(kept),
        kept_customers=len({row[0] for row in kept}),
        kept_rows_by_month=dict(sorted(months.items())),
        first_line=rows[0],
    )


def _iso(yyyymmdd: str) -> str:
    return f"{yyyymmdd[:4]}-{yyyymmdd[4:6]}-{yyyymmdd[6:]}"


@pytest.fixture(scope="module")
def cdnow_import(tmp_path_factory, cdnow_path):
    zone = LocalLandingZone(tmp_path_factory.mktemp("cdnow") / "landing")
    report = import_file(cdnow_path, load_mapping(MAPPING), zone, progress=False)
    return cdnow_path, zone, report


def test_the_file_is_the_one_the_readme_describes(cdnow_path):
    assert hashlib.sha256(cdnow_path.read_bytes()).hexdigest() == SHA256


def test_cdnow_import_report(cdnow_import, raw):
    _, _, report = cdnow_import
    assert report.status == "imported"
    assert report.sha256 == SHA256
    assert report.input_format["format"] == "whitespace"
    assert report.input_format["columns"] == [
        "customer_id",
        "date",
        "number_of_cds",
        "dollar_value",
    ]
    assert report.rows_read == raw.rows == 69_659  # the README's figures, as a cross-check
    assert report.customers_read == raw.customers == 23_570
    assert report.date_range == (_iso(raw.first_date), _iso(raw.last_date))
    # The zero-dollar lines go (as in the README's reference), and exact repeats of a
    # whole line (CDNOW has no order ids to tell them apart); nothing else.
    assert report.dropped == {"zero_amount": raw.zero_amount, "duplicate_line": raw.duplicate_lines}
    assert report.rows_kept == raw.rows - raw.zero_amount - raw.duplicate_lines
    assert report.customers == raw.kept_customers  # some bought only zero-dollar lines
    assert {p["period"]: p["rows"] for p in report.partitions} == raw.kept_rows_by_month


def test_cdnow_landing_zone_contents(cdnow_import, raw):
    _, zone, report = cdnow_import
    partitions = discover_partitions(zone, "transactions")
    assert [p.period for p in partitions] == list(raw.kept_rows_by_month)
    january = read_frame(zone, partitions[0].key)
    assert list(january.columns) == ["customer_id", "timestamp", "amount", "quantity"]
    first = january.iloc[0]
    customer, _, cds, dollars = raw.first_line  # ids lose their leading zeros
    expected = (str(int(customer)), float(dollars), float(cds))
    assert (first["customer_id"], first["amount"], first["quantity"]) == expected
    assert sum(p["rows"] for p in report.partitions) == report.rows_kept


def test_cdnow_reimport_adds_nothing(cdnow_import):
    source, zone, _ = cdnow_import
    before = zone.list_keys()
    again = import_file(source, load_mapping(MAPPING), zone, progress=False)
    assert again.status == "unchanged"
    assert zone.list_keys() == before
