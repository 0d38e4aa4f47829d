import json
import pickle

import numpy as np
import pandas as pd
import pytest

from churn_kfp.data import contract
from churn_kfp.data.rowhash import duplicated_rows
from churn_kfp.data.storage import (
    LocalLandingZone,
    partition_key,
    read_frame,
    unpartitioned_key,
    write_frame,
)
from churn_kfp.data.validation import (
    MIN_ROWS_FOR_OUTLIERS,
    OUTLIER_IQR_FACTOR,
    UNKNOWN,
    DataValidationError,
    ingest,
    outlier_upper_bound,
)

CUSTOMER_IDS = ("C1", "C2", "C3", "C4")


def _tx(month, n=40, year=2025, amount=None):
    """n distinct, clean transactions in one month, as the strings a CSV holds."""
    i = np.arange(n)
    return pd.DataFrame(
        {
            "customer_id": [CUSTOMER_IDS[k % len(CUSTOMER_IDS)] for k in i],
            "timestamp": [
                f"{year}-{month:02d}-{1 + k % 28:02d} {k // 28 % 24:02d}:{k % 60:02d}:11" for k in i
            ],
            "amount": [f"{10 + k % 7}.50" for k in i] if amount is None else amount,
        }
    )


def _customers():
    return pd.DataFrame(
        {
            "customer_id": list(CUSTOMER_IDS),
            "signup_date": ["2024-01-05", "2024-02-06", "2024-03-07", "2024-04-08"],
            "age": ["25", "35", "45", "55"],
            "gender": ["f", "m", "f", "m"],
            "location": ["north", "south", "east", "west"],
            "segment": ["retail", "retail", "business", "retail"],
        }
    )


def _feedback(month, n=8):
    texts = ["great service", "terrible, slow delivery", "ok", "love it"]
    return pd.DataFrame(
        {
            "customer_id": [CUSTOMER_IDS[k % 4] for k in range(n)],
            "timestamp": [f"2025-{month:02d}-{1 + k:02d}" for k in range(n)],
            "text": [texts[k % 4] for k in range(n)],
        }
    )


def _zone(tmp_path, months=(1, 2), customers=True, feedback=True):
    zone = LocalLandingZone(tmp_path / "landing")
    for month in months:
        write_frame(zone, partition_key("transactions", 2025, month), _tx(month))
        if feedback:
            write_frame(zone, partition_key("feedback", 2025, month), _feedback(month))
    if customers:
        write_frame(zone, unpartitioned_key("customers"), _customers())
    return zone


def _write_tx(zone, frame, month=2, **kwargs):
    key = partition_key("transactions", 2025, month, **kwargs)
    write_frame(zone, key, frame)
    return key


# --- the clean path -------------------------------------------------------------------


def test_clean_zone_is_read_whole_with_contract_dtypes(tmp_path):
    zone = _zone(tmp_path)
    result = ingest(zone)

    assert len(result.transactions) == 80
    assert len(result.customers) == 4
    assert len(result.feedback) == 16
    assert result.quality_score == 1.0
    assert result.report["warnings"] == []
    tx = result.transactions
    assert tx["timestamp"].dtype == "datetime64[ns]"
    assert tx["amount"].dtype == "float64"
    assert tx["customer_id"].map(type).eq(str).all()
    assert tx["timestamp"].is_monotonic_increasing
    assert result.customers["signup_date"].dtype == "datetime64[ns]"
    assert result.customers["age"].dtype == "float64"
    for table, frame in [
        ("transactions", tx),
        ("customers", result.customers),
        ("feedback", result.feedback),
    ]:
        contract.schema(table).validate(frame)  # raises if the output broke the contract
    assert result.data_range() == (
        pd.Timestamp("2025-01-01 00:00:11"),
        pd.Timestamp("2025-02-28 00:27:11"),
    )
    assert result.files == [
        partition_key("transactions", 2025, 1),
        partition_key("transactions", 2025, 2),
        unpartitioned_key("customers"),
        partition_key("feedback", 2025, 1),
        partition_key("feedback", 2025, 2),
    ]


def test_report_is_json_serialisable_and_complete(tmp_path):
    result = ingest(_zone(tmp_path))
    report = json.loads(json.dumps(result.report))
    tx = report["transactions"]
    for key in (
        "files",
        "rows_read",
        "rows_kept",
        "duplicates_removed",
        "missing_by_column",
        "imputed",
        "clipped_outliers",
        "dropped",
        "date_range",
    ):
        assert key in tx
    assert tx["rows_read"] == tx["rows_kept"] == 80
    assert tx["date_range"] == ["2025-01-01T00:00:11", "2025-02-28T00:27:11"]
    assert tx["rows_by_period"] == {"2025-01": 40, "2025-02": 40}
    assert report["periods"] == ["2025-01", "2025-02"]
    assert report["quality_score"] == 1.0
    assert report["customers"]["present"] is True


def test_optional_tables_may_be_absent(tmp_path):
    result = ingest(_zone(tmp_path, customers=False, feedback=False))
    assert result.customers is None
    assert result.feedback is None
    assert result.report["customers"]["present"] is False
    assert result.quality_score == 1.0


def test_iso_dates_and_offsets_are_accepted(tmp_path):
    zone = LocalLandingZone(tmp_path)
    frame = _tx(1, n=3)
    frame["timestamp"] = ["2025-01-31", "2025-01-31T14:02:11", "2025-01-31T16:02:11+02:00"]
    _write_tx(zone, frame, month=1)
    stamps = ingest(zone).transactions["timestamp"].tolist()
    assert stamps == [
        pd.Timestamp("2025-01-31 00:00:00"),
        pd.Timestamp("2025-01-31 14:02:11"),
        pd.Timestamp("2025-01-31 14:02:11"),  # converted to UTC, naive
    ]


# --- unrecoverable defects ------------------------------------------------------------


def test_no_transaction_files_is_empty_input(tmp_path):
    zone = LocalLandingZone(tmp_path)
    write_frame(zone, unpartitioned_key("customers"), _customers())
    with pytest.raises(DataValidationError, match="empty input") as info:
        ingest(zone)
    assert info.value.file is None
    assert info.value.column is None


def test_only_empty_transaction_files_is_empty_input(tmp_path):
    zone = LocalLandingZone(tmp_path)
    zone.write_bytes(partition_key("transactions", 2025, 1), b"")
    zone.write_bytes(partition_key("transactions", 2025, 2), b"customer_id,timestamp,amount\n")
    with pytest.raises(DataValidationError, match="empty input: all 2 transaction files are empty"):
        ingest(zone)


def test_an_empty_file_among_others_is_a_warning(tmp_path):
    zone = _zone(tmp_path, feedback=False)
    empty = partition_key("transactions", 2025, 3)
    zone.write_bytes(empty, b"customer_id,timestamp,amount\n")
    result = ingest(zone)
    assert result.report["transactions"]["empty_files"] == [empty]
    assert result.report["transactions"]["rows_by_period"]["2025-03"] == 0
    warnings = result.report["warnings"]
    assert any("empty file" in w and empty in w for w in warnings)
    assert any("month 2025-03 has 0 rows" in w for w in warnings)
    assert not any("no files for month" in w for w in warnings)


def test_missing_required_column_names_file_column_and_present_columns(tmp_path):
    zone = _zone(tmp_path)
    key = _write_tx(zone, _tx(3).drop(columns="amount").assign(qty="1"), month=3)
    with pytest.raises(DataValidationError) as info:
        ingest(zone)
    error = info.value
    assert (error.file, error.column) == (key, "amount")
    assert str(error) == (
        f"{key}: column 'amount': required column is missing; "
        "the file has columns ['customer_id', 'timestamp', 'qty']"
    )


def test_customers_without_customer_id_are_rejected(tmp_path):
    zone = _zone(tmp_path)
    key = unpartitioned_key("customers")
    write_frame(zone, key, _customers().rename(columns={"customer_id": "id"}))
    with pytest.raises(DataValidationError) as info:
        ingest(zone)
    assert (info.value.file, info.value.column) == (key, "customer_id")
    assert "'id'" in info.value.problem


def test_binary_file_cannot_be_parsed(tmp_path):
    zone = _zone(tmp_path)
    key = partition_key("transactions", 2025, 3)
    zone.write_bytes(key, bytes(range(256)) * 40)
    with pytest.raises(DataValidationError, match="cannot be parsed") as info:
        ingest(zone)
    assert info.value.file == key
    assert "binary" in info.value.problem


def test_wrong_delimiter_is_named(tmp_path):
    zone = _zone(tmp_path)
    key = partition_key("transactions", 2025, 3)
    zone.write_bytes(key, _tx(3).to_csv(index=False, sep=";").encode())
    with pytest.raises(DataValidationError) as info:
        ingest(zone)
    assert info.value.file == key
    assert "single column 'customer_id;timestamp;amount'" in str(info.value)
    assert "';' as delimiter" in str(info.value)


def test_tab_delimiter_is_named(tmp_path):
    zone = LocalLandingZone(tmp_path)
    key = partition_key("transactions", 2025, 1)
    zone.write_bytes(key, _tx(1).to_csv(index=False, sep="\t").encode())
    with pytest.raises(DataValidationError, match=r"'\\t' as delimiter") as info:
        ingest(zone)
    assert info.value.file == key


def test_rows_with_surplus_fields_cannot_be_parsed(tmp_path):
    zone = LocalLandingZone(tmp_path)
    key = partition_key("transactions", 2025, 1)
    zone.write_bytes(key, b"customer_id,timestamp,amount\nC1,2025-01-01,10,5,6\nC2,2025-01-02,11\n")
    with pytest.raises(DataValidationError, match="more fields than the header") as info:
        ingest(zone)
    assert info.value.file == key


def test_latin1_file_is_read_with_a_warning(tmp_path):
    zone = LocalLandingZone(tmp_path)
    key = partition_key("transactions", 2025, 1)
    zone.write_bytes(key, "customer_id,timestamp,amount\nZ\xfcri,2025-01-01,10\n".encode("latin-1"))
    result = ingest(zone)
    assert result.transactions["customer_id"].tolist() == ["Z\xfcri"]
    assert any("Latin-1" in w and key in w for w in result.report["warnings"])


def test_broken_csv_cannot_be_parsed(tmp_path):
    zone = _zone(tmp_path)
    key = partition_key("transactions", 2025, 3)
    zone.write_bytes(key, b'customer_id,timestamp,amount\nC1,2025-03-01,"10\nC2,2025-03-02,11\n')
    with pytest.raises(DataValidationError, match="cannot be parsed as CSV") as info:
        ingest(zone)
    assert info.value.file == key


def test_corrupt_parquet_cannot_be_parsed(tmp_path):
    zone = _zone(tmp_path)
    key = partition_key("transactions", 2025, 3, suffix=".parquet")
    zone.write_bytes(key, b"PAR1 this is not parquet")
    with pytest.raises(DataValidationError, match="cannot be parsed as Parquet") as info:
        ingest(zone)
    assert info.value.file == key


def test_mostly_unparseable_dates_reject_the_file(tmp_path):
    zone = _zone(tmp_path, months=(1,))
    frame = _tx(2, n=40)
    frame.loc[3:, "timestamp"] = "yesterday"
    key = _write_tx(zone, frame, month=2)
    with pytest.raises(DataValidationError) as info:
        ingest(zone)
    assert str(info.value) == (
        "raw/sales/year=2025/month=02/sales_2025_02.csv: column 'timestamp': "
        "37 of 40 values are not dates (e.g. 'yesterday')"
    )
    assert (info.value.file, info.value.column) == (key, "timestamp")


def test_just_over_five_percent_bad_dates_is_rejected(tmp_path):
    zone = LocalLandingZone(tmp_path)
    frame = _tx(1, n=100)
    frame.loc[:5, "timestamp"] = "31/01/2025"  # 6 of 100 (one of them missing below)
    frame.loc[0, "timestamp"] = None
    _write_tx(zone, frame, month=1)
    with pytest.raises(DataValidationError, match="5 of 100 values are not dates .* 1 are missing"):
        ingest(zone)


def test_mostly_non_numeric_amounts_reject_the_file(tmp_path):
    zone = _zone(tmp_path)
    key = _write_tx(zone, _tx(3, amount=["12,50"] * 40), month=3)
    with pytest.raises(DataValidationError) as info:
        ingest(zone)
    assert (info.value.file, info.value.column) == (key, "amount")
    assert "40 of 40 values are not numbers (e.g. '12,50')" in str(info.value)


def test_error_pickles_with_its_attributes():
    error = DataValidationError("raw/x.csv", "amount", "bad")
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.file, copy.column, copy.problem, str(copy)) == (
        "raw/x.csv",
        "amount",
        "bad",
        "raw/x.csv: column 'amount': bad",
    )
    assert isinstance(copy, ValueError)


# --- recoverable defects --------------------------------------------------------------


def test_a_few_bad_dates_are_dropped_and_counted(tmp_path):
    zone = LocalLandingZone(tmp_path)
    frame = _tx(1, n=100)
    frame.loc[[10, 20], "timestamp"] = "yesterday"
    frame.loc[30, "timestamp"] = None
    _write_tx(zone, frame, month=1)
    result = ingest(zone)
    report = result.report["transactions"]
    assert len(result.transactions) == 97
    assert report["dropped"] == {"invalid_timestamp": 2, "missing_timestamp": 1}
    assert report["missing_by_column"]["timestamp"] == 1
    assert report["invalid_by_column"]["timestamp"] == 2
    assert result.quality_score < 1.0


def test_exact_duplicates_within_and_across_files_are_dropped(tmp_path):
    zone = LocalLandingZone(tmp_path)
    jan = _tx(1, n=30)
    _write_tx(zone, pd.concat([jan, jan.iloc[:2]]), month=1)
    # a late file re-delivers three January rows inside February's partition
    _write_tx(zone, pd.concat([_tx(2, n=30), jan.iloc[5:8]]), month=2)
    result = ingest(zone)
    report = result.report["transactions"]
    assert report["rows_read"] == 65
    assert report["duplicates_removed"] == 5
    assert report["rows_kept"] == len(result.transactions) == 60
    assert report["rows_outside_partition"] == 3
    assert not result.transactions.duplicated().any()
    assert any("late-arriving" in w for w in result.report["warnings"])


def test_rows_that_differ_in_one_value_are_not_duplicates(tmp_path):
    zone = LocalLandingZone(tmp_path)
    frame = _tx(1, n=30)
    twin = frame.iloc[[0]].assign(amount="99.00")
    _write_tx(zone, pd.concat([frame, twin]), month=1)
    assert ingest(zone).report["transactions"]["duplicates_removed"] == 0


def test_missing_amount_takes_the_customers_median_else_the_global_median(tmp_path):
    zone = LocalLandingZone(tmp_path)
    frame = pd.DataFrame(
        {
            "customer_id": ["A", "A", "A", "A", "B", "B", "Z"],
            "timestamp": [f"2025-01-0{d}" for d in range(1, 8)],
            "amount": ["10", "20", "60", "", "100", "NA", None],
        }
    )
    _write_tx(zone, frame, month=1)
    result = ingest(zone)
    amounts = result.transactions.set_index("timestamp")["amount"]
    assert amounts[pd.Timestamp("2025-01-04")] == 20.0  # A's median of 10, 20, 60
    assert amounts[pd.Timestamp("2025-01-06")] == 100.0  # B's only other amount
    assert amounts[pd.Timestamp("2025-01-07")] == 40.0  # Z has none: median of 10, 20, 60, 100
    report = result.report["transactions"]
    assert report["missing_by_column"]["amount"] == 3  # "NA" counts as missing
    assert report["invalid_by_column"]["amount"] == 0
    assert report["imputed"] == {"amount": 3}


def test_a_few_invalid_amounts_are_imputed_and_counted(tmp_path):
    zone = LocalLandingZone(tmp_path)
    frame = _tx(1, n=40)
    frame.loc[0, "amount"] = "ten"
    _write_tx(zone, frame, month=1)
    result = ingest(zone)
    report = result.report["transactions"]
    assert report["invalid_by_column"]["amount"] == 1
    assert report["imputed"] == {"amount": 1}
    assert result.quality_score == pytest.approx(1 - 1 / 120, abs=1e-6)  # 1 cell of 40 x 3


def test_outliers_are_clipped_and_returns_kept(tmp_path):
    zone = LocalLandingZone(tmp_path)
    amounts = [str(10 + k % 10) for k in range(40)]
    amounts[5] = "250000"
    amounts[6] = "-35.5"
    _write_tx(zone, _tx(1, n=40, amount=amounts), month=1)
    result = ingest(zone)

    positive = pd.Series([float(a) for a in amounts if float(a) > 0])
    q1, q3 = positive.quantile([0.25, 0.75])
    bound = q3 + OUTLIER_IQR_FACTOR * (q3 - q1)
    assert bound < 1000
    report = result.report["transactions"]
    assert report["clipped_outliers"] == 1
    assert report["outlier_upper_bound"] == pytest.approx(bound)
    assert report["returns"] == 1
    tx = result.transactions.set_index("timestamp")["amount"]
    assert tx.max() == pytest.approx(bound)
    assert (tx == -35.5).sum() == 1
    assert result.quality_score < 1.0


def test_too_few_amounts_are_not_clipped():
    amounts = pd.Series([1.0] * (MIN_ROWS_FOR_OUTLIERS - 2) + [1e6])
    assert outlier_upper_bound(amounts) is None
    assert outlier_upper_bound(pd.Series([1.0] * MIN_ROWS_FOR_OUTLIERS + [1e6])) == 11.0


def test_rows_without_customer_id_are_dropped_and_ids_stripped(tmp_path):
    zone = LocalLandingZone(tmp_path)
    frame = _tx(1, n=20)
    frame.loc[[0, 1], "customer_id"] = None
    frame.loc[2, "customer_id"] = "  "
    frame.loc[3, "customer_id"] = " C9 "
    _write_tx(zone, frame, month=1)
    result = ingest(zone)
    report = result.report["transactions"]
    assert report["dropped"] == {"missing_customer_id": 3}
    assert report["missing_by_column"]["customer_id"] == 3
    assert len(result.transactions) == 17
    assert "C9" in set(result.transactions["customer_id"])


def test_customer_defects_are_repaired_and_counted(tmp_path):
    zone = _zone(tmp_path, feedback=False)
    customers = pd.DataFrame(
        {
            "customer_id": ["C1", "C2", "C3", "C4", "C5", "C6", "C2", None, "C1"],
            "signup_date": ["2024-01-01"] * 5 + ["not a date", "2024-02-01", "2024-01-01", None],
            "age": ["30", "5", "150", "abc", "", "50", "41", "20", "30"],
            "gender": ["f", None, "m", "f", "", "m", "m", "f", "f"],
            "location": ["n"] * 9,
            "segment": ["retail"] * 9,
        }
    )
    # C1 appears twice identically (exact duplicate), C2 twice with different values
    customers.iloc[8] = customers.iloc[0]
    write_frame(zone, unpartitioned_key("customers"), customers)
    with pytest.raises(DataValidationError, match="signup_date"):
        ingest(zone)  # 1 unparseable date in 9 rows is over 5 %

    customers["signup_date"] = "2024-01-01"
    write_frame(zone, unpartitioned_key("customers"), customers)
    result = ingest(zone)
    report = result.report["customers"]
    clean = result.customers.set_index("customer_id")

    assert report["rows_read"] == 9
    assert report["duplicates_removed"] == 1
    assert report["dropped"] == {"duplicate_customer_id": 1, "missing_customer_id": 1}
    assert len(clean) == 6 and clean.index.is_unique
    assert clean.loc["C2", "age"] == 41.0  # the last C2 row wins
    assert clean.loc["C2", "gender"] == "m"
    # valid ages among kept rows: 30, 50, 41 -> median 41 for 150, "abc" and ""
    assert clean.loc[["C3", "C4", "C5"], "age"].tolist() == [41.0, 41.0, 41.0]
    assert report["invalid_by_column"]["age"] == 3  # 5 (dropped with old C2), 150, abc
    assert report["imputed"] == {"age": 3, "gender": 1}
    assert clean.loc["C5", "gender"] == UNKNOWN == "unknown"
    assert report["missing_by_column"]["gender"] == 2  # C2's None and C5's blank
    assert not any("not in the customers table" in w for w in result.report["warnings"])


def test_feedback_without_text_is_dropped_and_counted(tmp_path):
    zone = _zone(tmp_path, months=(1,), feedback=False)
    frame = _feedback(1, n=8)
    frame.loc[[1, 2], "text"] = None
    frame.loc[3, "text"] = "   "
    frame.loc[4, "text"] = "None"  # free text: a word, not a null token
    write_frame(zone, partition_key("feedback", 2025, 1), frame)
    result = ingest(zone)
    assert result.report["feedback"]["dropped"] == {"missing_text": 3}
    assert len(result.feedback) == 5
    assert "None" in set(result.feedback["text"])


def test_columns_outside_the_contract_are_dropped_with_a_warning(tmp_path):
    zone = LocalLandingZone(tmp_path)
    _write_tx(zone, _tx(1).assign(note="x", quantity="2"), month=1)
    result = ingest(zone)
    assert list(result.transactions.columns) == ["customer_id", "timestamp", "amount", "quantity"]
    assert result.transactions["quantity"].dtype == "float64"
    assert result.report["transactions"]["ignored_columns"] == ["note"]
    assert any("note" in w for w in result.report["warnings"])


# --- filters, layout, formats ---------------------------------------------------------


def test_periods_and_until_select_partitions(tmp_path):
    zone = _zone(tmp_path, months=(1, 2, 3, 4))
    assert ingest(zone, periods=["2025-02", "2025-04"]).report["periods"] == ["2025-02", "2025-04"]
    until = ingest(zone, until="2025-02")
    assert until.report["periods"] == ["2025-01", "2025-02"]
    assert until.data_range()[1] < pd.Timestamp("2025-03-01")
    assert until.report["feedback"]["rows_by_period"] == {"2025-01": 8, "2025-02": 8}
    both = ingest(zone, periods=["2025-01", "2025-03"], until="2025-02")
    assert both.report["periods"] == ["2025-01"]
    with pytest.raises(DataValidationError, match="empty input.*periods \\['2026-01'\\]"):
        ingest(zone, periods=["2026-01"])
    with pytest.raises(ValueError, match="expected a period"):
        ingest(zone, until="2025-13")
    with pytest.raises(ValueError, match="expected a period"):
        ingest(zone, periods=["March"])


def test_until_a_day_with_daily_partitions(tmp_path):
    zone = LocalLandingZone(tmp_path)
    for day in (1, 2, 3):
        frame = _tx(1, n=5).assign(timestamp=f"2025-01-{day:02d} 10:00:00")
        frame["amount"] = [str(day * 10 + k) for k in range(5)]
        _write_tx(zone, frame, month=1, day=day)
    result = ingest(zone, until="2025-01-02")
    assert len(result.transactions) == 10
    assert result.report["transactions"]["rows_outside_partition"] == 0
    assert len(ingest(zone, periods=["2025-01"]).transactions) == 15


def test_parquet_input_with_typed_columns(tmp_path):
    zone = LocalLandingZone(tmp_path)
    frame = pd.DataFrame(
        {
            "customer_id": [101, 102, 103],
            "timestamp": pd.to_datetime(
                ["2025-01-05 10:00", "2025-01-06 00:00", "2025-01-07 00:00"]
            ).tz_localize("Europe/Berlin"),
            "amount": [10, None, 30],
        }
    )
    _write_tx(zone, frame, month=1, suffix=".parquet")
    result = ingest(zone)
    tx = result.transactions
    assert tx["customer_id"].tolist() == ["101", "102", "103"]
    assert tx["timestamp"].dtype == "datetime64[ns]"
    assert tx["timestamp"].iloc[0] == pd.Timestamp("2025-01-05 09:00")  # UTC
    assert tx["amount"].tolist() == [10.0, 20.0, 30.0]
    assert result.report["transactions"]["imputed"] == {"amount": 1}


def test_files_outside_the_layout_are_ignored_with_a_warning(tmp_path):
    zone = _zone(tmp_path, months=(1,))
    zone.write_bytes("raw/sales/stray.csv", b"customer_id,timestamp,amount\nX,2025-01-01,1\n")
    result = ingest(zone)
    assert "raw/sales/stray.csv" not in result.files
    assert any("stray.csv" in w for w in result.report["warnings"])


def test_gaps_and_thin_months_are_warned(tmp_path):
    zone = LocalLandingZone(tmp_path)
    for month in (1, 2, 4, 5):
        _write_tx(zone, _tx(month, n=40 if month != 5 else 8), month=month)
    warnings = ingest(zone).report["warnings"]
    assert any("no files for month(s) 2025-03" in w for w in warnings)
    assert any("month 2025-05 has 8 rows" in w for w in warnings)
    selected = ingest(zone, periods=["2025-01", "2025-04"]).report["warnings"]
    assert not any("no files for month" in w for w in selected)


def test_transaction_customers_missing_from_the_customers_table_are_warned(tmp_path):
    zone = _zone(tmp_path, months=(1,))
    write_frame(zone, unpartitioned_key("customers"), _customers().iloc[:3])
    warnings = ingest(zone).report["warnings"]
    assert any("1 customer id(s) are not in the customers table (e.g. 'C4')" in w for w in warnings)


# --- quality score --------------------------------------------------------------------


def _score_with_missing_amounts(tmp_path, n_missing):
    zone = LocalLandingZone(tmp_path / str(n_missing))
    frame = _tx(1, n=100)
    frame.loc[: n_missing - 1, "amount"] = None
    _write_tx(zone, frame, month=1)
    return ingest(zone).quality_score


def test_quality_score_falls_with_more_defects(tmp_path):
    scores = [_score_with_missing_amounts(tmp_path, n) for n in (0, 1, 5, 20)]
    assert scores[0] == 1.0
    assert scores == sorted(scores, reverse=True)
    assert len(set(scores)) == 4
    # one missing cell of 300 in the only table: 1 - 1/300
    assert scores[1] == pytest.approx(1 - 1 / 300, abs=1e-6)


def test_quality_score_counts_removed_rows_and_weights_tables(tmp_path):
    zone = LocalLandingZone(tmp_path)
    frame = _tx(1, n=100)
    _write_tx(zone, pd.concat([frame, frame.iloc[:10]]), month=1)
    write_frame(zone, unpartitioned_key("customers"), _customers())
    # transactions: 10 removed rows of 110 -> defect share 10/110; customers clean
    expected = 1 - 0.6 * (10 / 110) / (0.6 + 0.2)
    assert ingest(zone).quality_score == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize(
    "values",
    [
        ["a", "b", None, np.nan],
        ["a", np.str_("b"), "c"],
        [None, np.nan],
        ["a", 1, None],
        ["a", b"b", 2.5],
    ],
)
def test_contract_string_check_agrees_with_pandera_per_value(values):
    # the fast path must give pandera's own per-value answer, whatever the column holds
    series = pd.Series(values, dtype=object)
    fast = contract.ContractString()
    slow = contract.pandas_engine.NpString()
    assert fast.check(fast, series).tolist() == slow.check(slow, series).tolist()
    # and coerces to what pandera coerces to (the column itself when it is all strings)
    pd.testing.assert_series_equal(fast.coerce(series.copy()), slow.coerce(series.copy()))


@pytest.mark.parametrize(
    ("shuffled", "late", "suffix"),
    [
        (False, False, ".csv"),
        (True, False, ".csv"),
        (True, True, ".csv"),
        (True, False, ".parquet"),  # typed time stamps: Arrow sorts each file as it is read
        (True, True, ".parquet"),
    ],
)
def test_ingest_returns_transactions_in_time_order_ties_in_file_order(
    tmp_path, shuffled, late, suffix
):
    zone = LocalLandingZone(tmp_path)
    frames = [_tx(1).sort_values("timestamp"), _tx(2).sort_values("timestamp")]
    # a tie: the same second twice, told apart by the amount, in file order
    frames[1].loc[frames[1].index[5], ["timestamp", "amount"]] = [
        frames[1]["timestamp"].iloc[6],
        "13.25",
    ]
    if late:  # a row of January arrives in February's file, tying with a January row
        frames[1].loc[frames[1].index[0], ["timestamp", "amount"]] = [
            frames[0]["timestamp"].iloc[3],
            "14.25",
        ]
    if shuffled:
        frames = [f.sample(frac=1.0, random_state=1) for f in frames]
    if suffix == ".parquet":
        frames = [f.assign(timestamp=pd.to_datetime(f["timestamp"])) for f in frames]
        frames[0].loc[frames[0].index[7], "timestamp"] = pd.NaT  # dropped, whatever its place
    for month, frame in zip((1, 2), frames, strict=True):
        _write_tx(zone, frame, month=month, suffix=suffix)
    got = ingest(zone).transactions
    expected = pd.concat(frames, ignore_index=True).dropna(subset=["timestamp"])
    expected["timestamp"] = pd.to_datetime(expected["timestamp"])
    expected = expected.sort_values("timestamp", kind="stable")
    assert got["timestamp"].is_monotonic_increasing
    assert got["amount"].tolist() == expected["amount"].astype(float).tolist()
    assert got.index.equals(pd.RangeIndex(len(got)))


def test_parquet_files_are_read_in_stable_time_order_missing_times_last(tmp_path):
    zone = LocalLandingZone(tmp_path)
    stamps = pd.to_datetime(["2025-01-03", "2025-01-01", None, "2025-01-02", "2025-01-01"])
    frame = pd.DataFrame(
        {"customer_id": list("abcde"), "timestamp": stamps, "amount": [5.0, 1.0, 9.0, 4.0, 2.0]}
    )
    key = _write_tx(zone, frame, month=1, suffix=".parquet")
    got = read_frame(zone, key, sort_by="timestamp")
    assert got["customer_id"].tolist() == ["b", "e", "d", "a", "c"]  # ties keep file order
    assert got["customer_id"].dtype == object
    assert read_frame(zone, key)["customer_id"].tolist() == list("abcde")  # unsorted unless asked
    _write_tx(zone, frame.astype({"timestamp": str}), month=2)  # CSV text: as it is
    assert read_frame(zone, partition_key("transactions", 2025, 2), sort_by="timestamp")[
        "customer_id"
    ].tolist() == list("abcde")


@pytest.mark.parametrize("seed", range(6))
def test_duplicate_rows_are_the_ones_pandas_finds(seed):
    # few distinct values per column, so that repeats, NaN, -0.0, None and NaT all collide
    rng = np.random.default_rng(seed)
    n = 400 if seed % 2 else 4000  # odd seeds: most rows repeat (pandas compares them all)
    pick = lambda values: [values[i] for i in rng.integers(0, len(values), n)]  # noqa: E731
    frame = pd.DataFrame(
        {
            "customer_id": pick(["a", "b", None, np.nan, "c"]),
            "timestamp": pd.to_datetime(pick(["2025-01-01", "2025-01-02", None] + [None] * seed)),
            "amount": pick([0.0, -0.0, np.nan, 1.5, float(seed)]),
            "quantity": pd.array(pick([1, 2, None]), dtype="Int64"),
        }
    )
    if seed == 4:
        frame["timestamp"] = frame["timestamp"].dt.tz_localize("Europe/Paris")
    if seed >= 2 and not seed % 2:
        frame = pd.concat([frame, frame.iloc[:50]], ignore_index=True)  # a few exact repeats
        frame["amount"] = frame["amount"] + np.arange(len(frame)) * (np.arange(len(frame)) > 60)
    columns = list(frame.columns)
    expected = frame.duplicated(subset=columns, keep="first").to_numpy()
    assert expected.any()
    np.testing.assert_array_equal(duplicated_rows(frame, columns), expected)
