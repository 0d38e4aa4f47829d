"""The shipped CDNOW mapping imports the real CDNOW log as its README describes it.

The data is not in this repository: it is read from ``../shared/data/cdnow/`` beside the
checkout (or ``$CHURN_SHARED_DIR/data/cdnow/``) by the ``cdnow_path`` fixture. A missing
file fails the test with the places it was looked for: a silent skip would hide that the
example is untested.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from churn_kfp.data.importer.importing import import_file
from churn_kfp.data.importer.mapping import load_mapping
from churn_kfp.data.storage import LocalLandingZone, discover_partitions, read_frame

REPO = Path(__file__).resolve().parents[2]
MAPPING = REPO / "examples/cdnow/mapping.yaml"
SHA256 = "eff6889ed364c5199d6eacbbeb7a6d559971df4406ac876f322c373f00a072ef"


@pytest.fixture(scope="module")
def cdnow_import(tmp_path_factory, cdnow_path):
    zone = LocalLandingZone(tmp_path_factory.mktemp("cdnow") / "landing")
    report = import_file(cdnow_path, load_mapping(MAPPING), zone, progress=False)
    return cdnow_path, zone, report


def test_the_file_is_the_one_the_readme_describes(cdnow_path):
    assert hashlib.sha256(cdnow_path.read_bytes()).hexdigest() == SHA256


def test_cdnow_import_report(cdnow_import):
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
    assert report.rows_read == 69_659
    assert report.customers_read == 23_570
    assert report.date_range == ("1997-01-01", "1998-06-30")
    # The 80 zero-dollar lines go (as in the README's reference), and exact repeats of a
    # whole line (CDNOW has no order ids to tell them apart); nothing else.
    assert report.dropped == {"zero_amount": 80, "duplicate_line": 255}
    assert report.rows_kept == 69_659 - 80 - 255
    assert report.customers == 23_502  # 68 customers bought only zero-dollar lines
    assert [p["period"] for p in report.partitions][:2] == ["1997-01", "1997-02"]
    assert len(report.partitions) == 18


def test_cdnow_landing_zone_contents(cdnow_import):
    _, zone, report = cdnow_import
    partitions = discover_partitions(zone, "transactions")
    assert len(partitions) == 18
    january = read_frame(zone, partitions[0].key)
    assert list(january.columns) == ["customer_id", "timestamp", "amount", "quantity"]
    first = january.iloc[0]
    assert (first["customer_id"], first["amount"], first["quantity"]) == ("1", 11.77, 1.0)
    assert sum(p["rows"] for p in report.partitions) == report.rows_kept


def test_cdnow_reimport_adds_nothing(cdnow_import):
    source, zone, _ = cdnow_import
    before = zone.list_keys()
    again = import_file(source, load_mapping(MAPPING), zone, progress=False)
    assert again.status == "unchanged"
    assert zone.list_keys() == before
