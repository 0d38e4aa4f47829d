"""`churn import`: mapping checks, defects counted or refused, all-or-nothing writes."""

from __future__ import annotations

import json

import pandas as pd
import pandera.pandas as pa
import pyarrow
import pytest

import churn_kfp.data.importer.contract_check as contract_check
import churn_kfp.data.importer.values as importer_values
from churn_kfp.cli.main import main
from churn_kfp.data.contract import schema
from churn_kfp.data.importer.contract_check import value_wise
from churn_kfp.data.importer.errors import ImportFailed, ImportRefused, MappingError
from churn_kfp.data.importer.importing import import_file
from churn_kfp.data.importer.mapping import load_mapping, mapping_from_dict
from churn_kfp.data.importer.reading import collapse_blanks
from churn_kfp.data.importer.rules import customer_id_codes
from churn_kfp.data.storage import LocalLandingZone, discover_partitions, read_frame

BASIC = {
    "format": "csv",
    "delimiter": ",",
    "columns": {"customer_id": "cust", "timestamp": "date", "amount": "total"},
    "timestamp_format": "%Y-%m-%d",
}

CLEAN = """cust,date,total
1,2025-01-05,10.50
2,2025-01-20,20.00
1,2025-02-03,5.25
3,2025-03-15,7.00
"""


def mapping(**changes):
    data = {**BASIC, **changes}
    return mapping_from_dict(data)


@pytest.fixture
def zone(tmp_path):
    return LocalLandingZone(tmp_path / "landing")


def write(tmp_path, name, text, encoding="utf-8"):
    path = tmp_path / name
    path.write_bytes(text.encode(encoding) if isinstance(text, str) else text)
    return path


def imported(zone, table="transactions"):
    frames = [read_frame(zone, p.key) for p in discover_partitions(zone, table)]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def data_keys(zone):
    return [k for k in zone.list_keys() if k.startswith("raw/")]


# --- a clean import ---------------------------------------------------------------------


def test_clean_export_writes_monthly_parquet_partitions_and_a_manifest(tmp_path, zone):
    report = import_file(write(tmp_path, "orders.csv", CLEAN), mapping(), zone, progress=False)

    assert report.status == "imported"
    assert (report.rows_read, report.rows_kept, report.dropped) == (4, 4, {})
    assert report.customers == 3
    assert report.date_range == ("2025-01-05", "2025-03-15")
    assert [p["period"] for p in report.partitions] == ["2025-01", "2025-02", "2025-03"]
    assert data_keys(zone) == [
        "raw/sales/year=2025/month=01/sales_2025_01.parquet",
        "raw/sales/year=2025/month=02/sales_2025_02.parquet",
        "raw/sales/year=2025/month=03/sales_2025_03.parquet",
    ]
    frame = imported(zone)
    assert list(frame.columns) == ["customer_id", "timestamp", "amount"]
    assert frame["customer_id"].tolist() == ["1", "2", "1", "3"]
    assert str(frame["timestamp"].dtype) == "datetime64[ns]"
    assert frame["amount"].sum() == pytest.approx(42.75)
    manifest = json.loads(zone.read_bytes(report.manifest))
    assert manifest["sha256"] == report.sha256
    assert manifest["report"]["rows_kept"] == 4
    assert "rows read" in report.format() and "2025-01 .. 2025-03" in report.format()


def test_imported_zone_passes_ingestion(tmp_path, zone):
    from churn_kfp.data.validation import ingest

    import_file(write(tmp_path, "orders.csv", CLEAN), mapping(), zone, progress=False)
    result = ingest(zone)
    assert len(result.transactions) == 4
    assert result.transactions["customer_id"].tolist() == ["1", "2", "1", "3"]


def test_csv_output_and_daily_partitions(tmp_path, zone):
    source = write(tmp_path, "orders.csv", CLEAN)
    report = import_file(
        source, mapping(output_format="csv", partition="day"), zone, progress=False
    )
    assert report.partitions[0]["key"] == "raw/sales/year=2025/month=01/day=05/sales_2025_01_05.csv"
    assert len(report.partitions) == 4
    frame = imported(zone)
    assert frame["timestamp"].tolist()[0] == "2025-01-05 00:00:00"


def test_dry_run_writes_nothing(tmp_path, zone):
    report = import_file(
        write(tmp_path, "orders.csv", CLEAN), mapping(), zone, progress=False, dry_run=True
    )
    assert report.status == "dry_run" and report.rows_kept == 4
    assert zone.list_keys() == []


def test_delimiter_is_sniffed_when_not_given(tmp_path, zone):
    source = write(tmp_path, "orders.csv", CLEAN.replace(",", ";"))
    data = {k: v for k, v in BASIC.items() if k not in ("delimiter", "format")}
    report = import_file(source, mapping_from_dict(data), zone, progress=False)
    assert report.input_format["delimiter"] == ";" and report.rows_kept == 4


# --- defects that are counted ------------------------------------------------------------


def test_missing_customer_ids_are_dropped_and_counted(tmp_path, zone):
    text = CLEAN + ",2025-01-07,3.00\nNA,2025-01-08,4.00\n  ,2025-01-09,5.00\n"
    report = import_file(write(tmp_path, "o.csv", text), mapping(), zone, progress=False)
    assert report.dropped == {"missing_customer_id": 3}
    assert report.rows_read == 7 and report.rows_kept == 4
    assert report.examples["missing_customer_id"]["line"] == 6  # the header is line 1


def test_a_few_unparseable_dates_are_dropped_with_an_example(tmp_path, zone):
    text = CLEAN + "4,2025-02-30,1.00\n5,31/01/2025,1.00\n6,,1.00\n"
    report = import_file(write(tmp_path, "o.csv", text), mapping(), zone, progress=False)
    assert report.dropped == {"missing_timestamp": 1, "unparseable_timestamp": 2}
    assert report.examples["unparseable_timestamp"]["value"] == "2025-02-30"  # no roll-over
    assert report.rows_kept == 4


def test_non_numeric_amounts_are_dropped_and_missing_ones_noted(tmp_path, zone):
    text = CLEAN + "4,2025-01-07,abc\n5,2025-01-08,\n"
    report = import_file(write(tmp_path, "o.csv", text), mapping(), zone, progress=False)
    assert report.dropped == {"non_numeric_amount": 1}
    assert report.notes == {"missing_amount": 1}
    assert report.rows_kept == 5


def test_duplicated_lines_are_dropped_once_each(tmp_path, zone):
    lines = CLEAN.splitlines()
    text = "\n".join([*lines, lines[1], lines[1], lines[3]]) + "\n"
    report = import_file(write(tmp_path, "o.csv", text), mapping(), zone, progress=False)
    assert report.dropped == {"duplicate_line": 3}
    assert report.rows_kept == 4
    kept = import_file(
        write(tmp_path, "o2.csv", text),
        mapping(duplicates="keep"),
        zone,
        progress=False,
        replace=True,
    )
    assert kept.rows_kept == 7


def test_negative_quantities_are_returns(tmp_path, zone):
    text = "cust,date,qty,total\n1,2025-01-05,2,10\n1,2025-01-06,-1,-5\n2,2025-01-07,1,3\n"
    columns = {**BASIC["columns"], "quantity": "qty"}
    dropped = import_file(
        write(tmp_path, "o.csv", text),
        mapping(columns=columns, returns={"negative_quantity": True}),
        zone,
        progress=False,
    )
    assert dropped.dropped == {"return_negative_quantity": 1}
    assert dropped.examples["return_negative_quantity"] == {"row": 2, "line": 3, "value": "-1"}

    kept = import_file(
        write(tmp_path, "o2.csv", text),
        mapping(columns=columns, returns={"negative_quantity": True, "action": "keep"}),
        LocalLandingZone(tmp_path / "other"),
        progress=False,
    )
    assert kept.dropped == {} and kept.notes == {"returns_kept": 1}
    frame = imported(LocalLandingZone(tmp_path / "other"))
    assert sorted(frame["amount"].tolist()) == [-5.0, 3.0, 10.0]


def test_cancellations_by_order_id_prefix_and_status(tmp_path, zone):
    text = (
        "order,cust,date,total,state\n"
        "A1,1,2025-01-05,10,shipped\n"
        "C2,1,2025-01-06,10,shipped\n"
        "A3,2,2025-01-07,5,Cancelled\n"
        "A4,2,2025-01-08,5, REFUNDED \n"
        "A5,3,2025-01-09,7,shipped\n"
    )
    columns = {**BASIC["columns"], "order_id": "order", "status": "state"}
    rule = {"order_id_prefix": "C", "status_values": ["cancelled", "refunded"]}
    report = import_file(
        write(tmp_path, "o.csv", text),
        mapping(columns=columns, returns=rule),
        zone,
        progress=False,
    )
    assert report.dropped == {"cancelled_order_id": 1, "cancelled_status": 2}
    assert report.examples["cancelled_order_id"]["value"] == "C2"
    frame = imported(zone)
    assert frame["order_id"].tolist() == ["A1", "A5"]
    assert "status" not in frame  # feeds the returns rule only


def test_amount_is_quantity_times_unit_price(tmp_path, zone):
    text = "cust,date,qty,price\n1,2025-01-05,3,2.50\n2,2025-01-06,2,x\n3,2025-01-07,,4\n"
    columns = {"customer_id": "cust", "timestamp": "date", "quantity": "qty", "unit_price": "price"}
    report = import_file(
        write(tmp_path, "o.csv", text),
        mapping(columns=columns, amount="quantity_x_unit_price"),
        zone,
        progress=False,
    )
    assert report.dropped == {"non_numeric_unit_price": 1}
    assert report.notes == {"missing_amount": 1}
    frame = imported(zone)
    assert frame["amount"].tolist()[0] == pytest.approx(7.5)
    assert frame["quantity"].tolist()[0] == 3.0


def test_a_line_repeating_a_dropped_line_is_kept(tmp_path, zone):
    text = "order,cust,date,total,state\nA1,1,2025-01-05,10,cancelled\nA1,1,2025-01-05,10,ok\n"
    columns = {**BASIC["columns"], "order_id": "order", "status": "state"}
    rule = {"status_values": ["cancelled"]}
    report = import_file(
        write(tmp_path, "o.csv", text), mapping(columns=columns, returns=rule), zone, progress=False
    )
    assert report.dropped == {"cancelled_status": 1} and report.rows_kept == 1


def test_malformed_lines_are_dropped_and_counted(tmp_path, zone):
    text = CLEAN + "4,2025-01-07,1.00,extra\n"
    report = import_file(write(tmp_path, "o.csv", text), mapping(), zone, progress=False)
    assert report.dropped == {"malformed_line": 1}
    assert report.examples["malformed_line"]["value"] == "4,2025-01-07,1.00,extra"


# --- customer ids, time zones, other formats ---------------------------------------------


def test_customer_id_normalisation(tmp_path, zone):
    text = (
        "cust,date,total\n"
        "17850.0,2025-01-05,1\n00001,2025-01-06,1\n 42 ,2025-01-07,1\nAB.0,2025-01-08,1\n"
    )
    source = write(tmp_path, "o.csv", text)
    import_file(source, mapping(), zone, progress=False)
    assert imported(zone)["customer_id"].tolist() == ["17850", "00001", "42", "AB.0"]

    other = LocalLandingZone(tmp_path / "stripped")
    import_file(source, mapping(customer_id={"strip_leading_zeros": True}), other, progress=False)
    assert imported(other)["customer_id"].tolist() == ["17850", "1", "42", "AB.0"]

    padded = LocalLandingZone(tmp_path / "padded")
    import_file(source, mapping(customer_id={"zero_pad": 5}), padded, progress=False)
    assert imported(padded)["customer_id"].tolist() == ["17850", "00001", "00042", "AB.0"]


def test_source_time_zone_is_converted_to_naive_utc(tmp_path, zone):
    text = "cust,date,total\n1,2025-07-01 12:00,1\n2,2025-01-01 12:00,1\n"
    report = import_file(
        write(tmp_path, "o.csv", text),
        mapping(timestamp_format="%Y-%m-%d %H:%M", timezone="Europe/London"),
        zone,
        progress=False,
    )
    assert report.date_range == ("2025-01-01 12:00:00", "2025-07-01 11:00:00")


def test_iso_dates_with_offsets_without_a_format(tmp_path, zone):
    text = "cust,date,total\n1,2025-01-05T10:00:00+02:00,1\n2,2025-01-06 08:30:00,1\n"
    data = {**BASIC}
    del data["timestamp_format"]
    report = import_file(
        write(tmp_path, "o.csv", text), mapping_from_dict(data), zone, progress=False
    )
    assert report.date_range == ("2025-01-05 08:00:00", "2025-01-06 08:30:00")


def test_whitespace_aligned_export_with_crlf(tmp_path, zone):
    text = (
        "  id   day      cds   dollars\r\n"
        " 00001 19970101    1   11.77\r\n"
        " 00002\t19970112    5   77.00  \r\n"
    )
    report = import_file(
        write(tmp_path, "cdnow.txt", text),
        mapping_from_dict(
            {
                "format": "whitespace",
                "columns": {
                    "customer_id": "id",
                    "timestamp": "day",
                    "amount": "dollars",
                    "quantity": "cds",
                },
                "timestamp_format": "%Y%m%d",
            }
        ),
        zone,
        progress=False,
    )
    assert (report.rows_read, report.rows_kept) == (2, 2)
    frame = imported(zone)
    assert frame["customer_id"].tolist() == ["00001", "00002"]
    assert frame["amount"].tolist() == [11.77, 77.0]
    assert frame["quantity"].tolist() == [1.0, 5.0]


def test_parquet_export_with_typed_columns(tmp_path, zone):
    frame = pd.DataFrame(
        {
            "CustomerID": [17850.0, 13047.0, None],
            "InvoiceDate": pd.to_datetime(
                ["2010-12-01 08:26", "2010-12-01 08:28", "2010-12-02 09:00"]
            ),
            "Quantity": [6, -2, 1],
            "UnitPrice": [2.55, 3.39, 1.0],
            "InvoiceNo": ["536365", "C536366", "536367"],
        }
    )
    path = tmp_path / "online_retail.parquet"
    frame.to_parquet(path)
    report = import_file(
        path,
        mapping_from_dict(
            {
                "columns": {
                    "customer_id": "CustomerID",
                    "timestamp": "InvoiceDate",
                    "quantity": "Quantity",
                    "unit_price": "UnitPrice",
                    "order_id": "InvoiceNo",
                },
                "amount": "quantity_x_unit_price",
                "returns": {"order_id_prefix": "C", "negative_quantity": True},
            }
        ),
        zone,
        progress=False,
    )
    assert report.input_format["format"] == "parquet"
    assert report.dropped == {"missing_customer_id": 1, "cancelled_order_id": 1}
    out = imported(zone)
    assert out["customer_id"].tolist() == ["17850"]
    assert out["amount"].tolist() == [pytest.approx(15.3)]


def test_latin1_export_imports_with_its_encoding(tmp_path, zone):
    text = "cust,date,total,product\n1,2025-01-05,1,Café\n"
    columns = {**BASIC["columns"], "product_id": "product"}
    import_file(
        write(tmp_path, "o.csv", text, encoding="latin-1"),
        mapping(columns=columns, encoding="latin-1"),
        zone,
        progress=False,
    )
    assert imported(zone)["product_id"].tolist() == ["Café"]


# --- refusals: nothing written -----------------------------------------------------------


def refused(tmp_path, zone, text, the_mapping, encoding="utf-8"):
    source = write(tmp_path, "export.csv", text, encoding=encoding)
    with pytest.raises(ImportRefused) as caught:
        import_file(source, the_mapping, zone, progress=False)
    assert zone.list_keys() == [], "a refused import must leave nothing behind"
    assert str(source) in str(caught.value)
    return caught.value


def test_most_dates_unparseable_is_refused_with_a_format_suggestion(tmp_path, zone):
    text = "cust,date,total\n1,05/01/2025,1\n2,20/01/2025,1\n3,2025-01-03,1\n"
    error = refused(tmp_path, zone, text, mapping())
    assert error.column == "date"
    assert error.example == "05/01/2025"
    assert "2 of 3 rows" in str(error) and "'%d/%m/%Y'" in str(error)


def test_wrong_delimiter_is_refused_naming_the_column(tmp_path, zone):
    error = refused(tmp_path, zone, CLEAN.replace(",", ";"), mapping())
    assert error.column == "cust"
    assert "single column" in str(error) and "';'" in str(error)


def test_missing_mapped_column_is_refused_listing_the_columns(tmp_path, zone):
    text = CLEAN.replace("total", "amount_eur")
    error = refused(tmp_path, zone, text, mapping())
    assert error.column == "total"
    assert "columns.amount" in str(error)
    assert "['cust', 'date', 'amount_eur']" in str(error)


def test_wrong_encoding_is_refused_suggesting_the_encoding_key(tmp_path, zone):
    text = "cust,date,total,product\n1,2025-01-05,1,Caf\xe9\n"
    columns = {**BASIC["columns"], "product_id": "product"}
    error = refused(tmp_path, zone, text, mapping(columns=columns), encoding="latin-1")
    assert "not valid utf-8" in str(error) and "line 2" in str(error)
    assert error.column == "product" and error.example == "Café"
    assert "encoding:" in str(error)


@pytest.mark.parametrize("text", ["", "\n\n", "cust,date,total\n"])
def test_empty_file_is_refused(tmp_path, zone, text):
    error = refused(tmp_path, zone, text, mapping())
    assert "empty file" in str(error)


def test_mostly_non_numeric_amounts_are_refused(tmp_path, zone):
    text = 'cust,date,total\n1,2025-01-05,"1,50"\n2,2025-01-06,"2,50"\n'
    error = refused(tmp_path, zone, text, mapping())
    assert error.column == "total" and error.example == "1,50"
    assert "decimal" in str(error)
    report = import_file(
        write(tmp_path, "again.csv", text), mapping(decimal=","), zone, progress=False
    )
    assert imported(zone)["amount"].tolist() == [1.5, 2.5] and report.rows_kept == 2


def test_contract_violation_is_refused(tmp_path, zone, monkeypatch):
    strict = pa.DataFrameSchema({"amount": pa.Column(float, pa.Check.gt(100))}, coerce=True)
    monkeypatch.setattr(contract_check, "schema", lambda table: strict)
    error = refused(tmp_path, zone, CLEAN, mapping())
    assert "data contract" in str(error)


def test_contracts_checking_one_value_at_a_time_are_checked_on_distinct_values():
    assert value_wise(schema("transactions")) and value_wise(schema("feedback"))
    assert not value_wise(schema("customers"))  # unique ids: every row is checked
    assert not value_wise(pa.DataFrameSchema({"amount": pa.Column(float, pa.Check.gt(0))}))


@pytest.mark.parametrize(
    ("column", "contract", "last_line"),
    [
        ("amount", pa.Column(float, nullable=False), "7,2025-01-09,\n"),  # noted, kept
        ("customer_id", pa.Column(int, nullable=False), "x7,2025-01-09,1.00\n"),
    ],
)
def test_distinct_value_check_still_refuses_one_bad_row(
    tmp_path, zone, monkeypatch, column, contract, last_line
):
    columns = {
        "customer_id": pa.Column(str, nullable=False),
        "timestamp": pa.Column("datetime64[ns]", nullable=False),
        "amount": pa.Column(float, nullable=True),
    }
    strict = pa.DataFrameSchema({**columns, column: contract}, coerce=True)
    assert value_wise(strict)
    monkeypatch.setattr(contract_check, "schema", lambda table: strict)
    lines = "".join(f"{i % 7 + 1},2025-01-{i % 28 + 1:02d},{i % 5}.50\n" for i in range(300))
    error = refused(tmp_path, zone, "cust,date,total\n" + lines + last_line, mapping())
    assert "data contract" in str(error) and column in str(error)
    assert data_keys(zone) == []


# --- idempotence, overlaps, failures ------------------------------------------------------


def test_reimporting_the_same_file_adds_nothing(tmp_path, zone):
    source = write(tmp_path, "orders.csv", CLEAN)
    import_file(source, mapping(), zone, progress=False)
    before = {k: zone.read_bytes(k) for k in zone.list_keys()}
    copy = write(tmp_path, "same-bytes-other-name.csv", CLEAN)
    again = import_file(copy, mapping(), zone, progress=False)
    assert again.status == "unchanged" and "nothing added" in again.message
    assert again.rows_kept == 4
    assert {k: zone.read_bytes(k) for k in zone.list_keys()} == before


def test_overlapping_file_is_refused_without_replace_and_replaces_with_it(tmp_path, zone):
    first = import_file(write(tmp_path, "jan-mar.csv", CLEAN), mapping(), zone, progress=False)
    before = {k: zone.read_bytes(k) for k in zone.list_keys()}
    corrected = "cust,date,total\n9,2025-03-01,99\n9,2025-04-01,1\n"
    source = write(tmp_path, "mar-apr.csv", corrected)
    with pytest.raises(ImportRefused) as caught:
        import_file(source, mapping(), zone, progress=False)
    message = str(caught.value)
    assert "raw/sales/year=2025/month=03/sales_2025_03.parquet" in message
    assert "jan-mar.csv" in message and "--replace" in message
    assert {k: zone.read_bytes(k) for k in zone.list_keys()} == before

    report = import_file(source, mapping(), zone, progress=False, replace=True)
    assert report.replaced == ["raw/sales/year=2025/month=03/sales_2025_03.parquet"]
    frame = imported(zone)
    assert frame.loc[frame["timestamp"] >= "2025-03-01", "customer_id"].tolist() == ["9", "9"]
    assert len(frame) == 5  # Jan + Feb from the first file, Mar + Apr from the second
    old = json.loads(zone.read_bytes(first.manifest))
    assert [p["period"] for p in old["partitions"]] == ["2025-01", "2025-02"]
    assert old["replaced_by"][0]["keys"] == report.replaced


def test_same_file_with_another_mapping_needs_replace(tmp_path, zone):
    source = write(tmp_path, "orders.csv", CLEAN)
    import_file(source, mapping(), zone, progress=False)
    with pytest.raises(ImportRefused, match="different mapping"):
        import_file(source, mapping(output_format="csv"), zone, progress=False)
    report = import_file(source, mapping(output_format="csv"), zone, progress=False, replace=True)
    assert all(k.endswith(".csv") for k in data_keys(zone)) and report.rows_kept == 4


class FailingZone(LocalLandingZone):
    """Fails on the n-th data write (staged or not)."""

    def __init__(self, root, fail_at):
        super().__init__(root)
        self.writes, self.fail_at = 0, fail_at

    def write_bytes(self, key, data):
        if "raw/" in key:
            self.writes += 1
            if self.writes == self.fail_at:
                raise OSError("disk full")
        super().write_bytes(key, data)


def test_a_write_failing_midway_removes_what_the_import_wrote(tmp_path):
    zone = FailingZone(tmp_path / "landing", fail_at=2)
    with pytest.raises(ImportFailed, match="disk full"):
        import_file(write(tmp_path, "o.csv", CLEAN), mapping(), zone, progress=False)
    assert zone.list_keys() == []


def test_a_failed_replace_restores_the_replaced_files(tmp_path):
    zone = FailingZone(tmp_path / "landing", fail_at=0)
    import_file(write(tmp_path, "a.csv", CLEAN), mapping(), zone, progress=False)
    before = {k: zone.read_bytes(k) for k in zone.list_keys()}
    zone.writes, zone.fail_at = 0, 2
    with pytest.raises(ImportFailed, match="nothing was imported"):
        import_file(
            write(tmp_path, "b.csv", "cust,date,total\n9,2025-01-01,1\n9,2025-02-01,1\n"),
            mapping(),
            zone,
            progress=False,
            replace=True,
        )
    assert {k: zone.read_bytes(k) for k in zone.list_keys()} == before


# --- the mapping --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"delimeter": ","}, "unknown key 'delimeter' (did you mean 'delimiter'?)"),
        ({"columns": {"timestamp": "d", "amount": "a"}}, "columns.customer_id is required"),
        ({"columns": {"customer_id": "c", "amount": "a"}}, "columns.timestamp is required"),
        ({"columns": {"customer_id": "c", "timestamp": "d"}}, "columns.amount is required"),
        ({"columns": {"customer_id": "c", "timestamp": "d", "price": "p"}}, "columns.'price'"),
        ({"timestamp_format": "YYYYMMDD"}, "timestamp_format: expected a strftime pattern"),
        ({"timezone": "Mars/Olympus"}, "unknown time zone"),
        ({"format": "xlsx"}, "format: expected one of auto, csv, whitespace, parquet"),
        ({"encoding": "klingon"}, "unknown codec"),
        ({"returns": {"negative_quantity": True}}, "needs columns.quantity"),
        ({"customer_id": {"zero_pad": 5, "strip_leading_zeros": True}}, "exclude each other"),
        ({"header": False}, "header: false needs 'names:'"),
    ],
)
def test_bad_mappings_are_refused_clearly(change, message):
    with pytest.raises(MappingError) as caught:
        mapping(**change)
    assert message in str(caught.value)


def test_load_mapping_reads_yaml_and_names_the_file(tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text("columns: {customer_id: c, timestamp: d, amount: a}\npartition: day\n")
    assert load_mapping(good).partition == "day"
    bad = tmp_path / "bad.yaml"
    bad.write_text("columns: {customer_id: c, timestamp: d, amount: a}\nsheet: 1\n")
    with pytest.raises(MappingError, match=r"bad\.yaml: unknown key 'sheet'"):
        load_mapping(bad)


def test_header_false_with_names(tmp_path, zone):
    text = "\n".join(CLEAN.splitlines()[1:]) + "\n"
    report = import_file(
        write(tmp_path, "o.csv", text),
        mapping(header=False, names=["cust", "date", "total"]),
        zone,
        progress=False,
    )
    assert report.rows_read == 4 and report.rows_kept == 4


# --- the command line ---------------------------------------------------------------------


def test_cli_imports_and_prints_json(tmp_path, capsys):
    spec = tmp_path / "m.yaml"
    spec.write_text(json.dumps(BASIC))
    source = write(tmp_path, "o.csv", CLEAN)
    code = main(
        ["import", str(spec), str(source), "--landing-zone", str(tmp_path / "lz"), "--json"]
    )
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["status"] == "imported" and report["rows_kept"] == 4


def test_cli_refusal_exits_2_with_the_message(tmp_path, capsys):
    spec = tmp_path / "m.yaml"
    spec.write_text(json.dumps(BASIC))
    source = write(tmp_path, "o.csv", CLEAN.replace(",", "|"))
    code = main(["import", str(spec), str(source), "--landing-zone", str(tmp_path / "lz")])
    assert code == 2
    err = capsys.readouterr().err
    assert "column 'cust'" in err and "nothing was written" in err
    assert LocalLandingZone(tmp_path / "lz").list_keys() == []  # (the lock file is hidden)


def test_zero_amounts_can_be_dropped(tmp_path, zone):
    text = CLEAN + "4,2025-01-07,0.00\n"
    report = import_file(
        write(tmp_path, "o.csv", text), mapping(zero_amount="drop"), zone, progress=False
    )
    assert report.dropped == {"zero_amount": 1} and report.rows_kept == 4


def test_fresh_import_empties_the_landing_zone_first(tmp_path, zone):
    import_file(write(tmp_path, "a.csv", CLEAN), mapping(), zone, progress=False)
    zone.write_bytes("raw/customers/customers.csv", b"customer_id\n1\n")
    other = "cust,date,total\n9,2024-06-01,1\n"
    report = import_file(write(tmp_path, "b.csv", other), mapping(), zone, fresh=True)
    assert report.status == "imported" and len(report.replaced) == 4
    assert data_keys(zone) == ["raw/sales/year=2024/month=06/sales_2024_06.parquet"]
    assert [k for k in zone.list_keys() if k.startswith("imports/")] == [report.manifest]


def test_a_refused_fresh_import_keeps_the_landing_zone(tmp_path, zone):
    import_file(write(tmp_path, "a.csv", CLEAN), mapping(), zone, progress=False)
    before = zone.list_keys()
    with pytest.raises(ImportRefused):
        import_file(write(tmp_path, "b.csv", ""), mapping(), zone, fresh=True)
    assert zone.list_keys() == before


def test_all_rows_dropped_is_refused(tmp_path, zone):
    text = "cust,date,total\n,2025-01-05,1\nNA,2025-01-06,2\n"
    error = refused(tmp_path, zone, text, mapping())
    assert "all 2 rows were dropped (missing_customer_id: 2)" in str(error)


def test_customers_table_import(tmp_path, zone):
    text = (
        "id;joined;age;tier\n"
        "00001;2024-01-05;34;gold\n"
        "00002;not a date;abc;silver\n"
        "00001;2024-01-05;35;platinum\n"
        ";2024-02-01;40;gold\n"
    )
    spec = {
        "table": "customers",
        "columns": {"customer_id": "id", "signup_date": "joined", "age": "age", "segment": "tier"},
        "timestamp_format": "%Y-%m-%d",
    }
    report = import_file(write(tmp_path, "c.csv", text), mapping_from_dict(spec), zone)
    assert report.dropped == {"missing_customer_id": 1, "duplicate_customer_id": 1}
    assert report.notes == {"non_numeric_age": 1, "unparseable_signup_date": 1}
    assert data_keys(zone) == ["raw/customers/customers.parquet"]
    frame = read_frame(zone, "raw/customers/customers.parquet")
    assert frame["customer_id"].tolist() == ["00002", "00001"]
    assert frame["segment"].tolist() == ["silver", "platinum"]  # the last row of 00001 wins
    assert frame["age"].isna().tolist() == [True, False]


def test_feedback_table_import(tmp_path, zone):
    text = 'user,at,comment\n1,2025-01-05 10:00:00,"Great, thanks"\n2,2025-01-06 11:00:00,\n'
    spec = {
        "table": "feedback",
        "columns": {"customer_id": "user", "timestamp": "at", "text": "comment"},
    }
    report = import_file(write(tmp_path, "f.csv", text), mapping_from_dict(spec), zone)
    assert report.dropped == {"missing_text": 1}
    assert data_keys(zone) == ["raw/feedback/year=2025/month=01/feedback_raw_2025_01.parquet"]
    frame = imported(zone, "feedback")
    assert frame["text"].tolist() == ["Great, thanks"]


def test_blanks_around_header_names_and_values(tmp_path, zone):
    text = " cust , date ,total\n 1 , 2025-01-05 , 10.5 \n"
    report = import_file(write(tmp_path, "o.csv", text), mapping(), zone, progress=False)
    assert report.rows_kept == 1 and report.input_format["columns"] == ["cust", "date", "total"]
    assert imported(zone)["amount"].tolist() == [10.5]


def test_whitespace_collapse_is_the_same_in_small_blocks():
    data = b"  a  b\tc \r\n 1   2  3\r\n\r\n4 5 6  \n7\t\t8 9"
    expected = b"a b c\r\n1 2 3\r\n\r\n4 5 6\n7 8 9"
    assert collapse_blanks(data) == expected
    assert all(collapse_blanks(data, block=size) == expected for size in (1, 5, 13))


# --- fast paths give what the plain ones give --------------------------------------------


def messy_export() -> str:
    """Every kind of defect, each value repeated, and a block of duplicated lines."""
    ids = ["17850", "17850.0", "0042", " 42 ", "", "abc"]
    dates = [
        "2025-02-30 10:00:00",
        "2025-03-01 00:00:00",
        " 2025-01-05 10:00:00 ",
        "",
        "NA",
        "9999-12-31 00:00:00",
        "2025-05-03T04:05:06+02:00",
        "garbage",
        "2025-1-5 1:2:3",
        "2024-02-29 12:00:00",
        "2025-04-02",
    ]
    quantities = ["1", "-1", "x", "", "3.5"]
    prices = ["1.50", "0", "abc", "", "1e2", "inf", " 4.25 "]
    lines = [
        ";".join([ids[i % 6], dates[i % 11], quantities[i % 5], prices[i % 7]]) for i in range(600)
    ]
    return "\n".join(["cust;date;qty;price", *lines, *lines[:50]]) + "\n"


def test_values_converted_once_per_distinct_value_give_the_same_import(tmp_path, monkeypatch):
    source = write(tmp_path, "messy.csv", messy_export())
    spec = {
        "format": "csv",
        "delimiter": ";",
        "columns": {
            "customer_id": "cust",
            "timestamp": "date",
            "quantity": "qty",
            "unit_price": "price",
        },
        "amount": "quantity_x_unit_price",
        "returns": {"negative_quantity": True, "action": "keep"},
        "timezone": "Europe/London",
    }
    results = []
    for repetitive in (False, True):
        for module in (importer_values, contract_check):  # the conversions and the contract check
            monkeypatch.setattr(module, "repetitive", lambda values, r=repetitive: r)
        zone = LocalLandingZone(tmp_path / f"landing-{repetitive}")
        report = import_file(source, mapping_from_dict(spec), zone, progress=False)
        summary = (report.dropped, report.notes, report.examples, report.customers)
        results.append((summary, imported(zone)))
    (row_by_row, frame), (per_value, same_frame) = results
    assert row_by_row == per_value
    assert {"unparseable_timestamp", "duplicate_line", "non_numeric_unit_price"} <= set(
        row_by_row[0]
    )
    pd.testing.assert_frame_equal(frame, same_frame)


@pytest.mark.parametrize(
    "ids",
    [
        ["17850", "1", None, "17850", "0", "42"],  # plain numbers: coded by sorting integers
        ["007", "7", None, "7"],  # a leading zero: coded as strings
        ["x7", "7", "x7"],  # not a number: coded as strings
        ["99999999999999999999", "1", "1"],  # more digits than an int64 holds
    ],
)
def test_customer_id_codes_tell_exactly_the_same_ids_apart(ids):
    codes, dictionary = customer_id_codes(pyarrow.chunked_array([ids], pyarrow.string()))
    assert sorted(dictionary.to_pylist()) == sorted({i for i in ids if i is not None})
    assert [dictionary[c].as_py() if c >= 0 else None for c in codes] == ids
