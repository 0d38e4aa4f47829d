"""Nothing lost, nothing mixed: all-or-nothing changes, the lock, the generator's own data.

In process: a change that fails before its commit leaves nothing; one cut short after its
commit is finished by the next reader; the landing-zone lock names its holder; the
synthetic generator never writes beside data it did not write and replaces its own dataset
whole; ``--fresh`` spares a user's own files; ``--replace`` restores replaced months;
returns follow the data contract; a binary file is named as such.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pandas as pd
import pytest

from churn_kfp.cli.main import main
from churn_kfp.data import datagen, staging
from churn_kfp.data.importer.errors import ImportRefused
from churn_kfp.data.importer.importing import import_file
from churn_kfp.data.importer.mapping import mapping_from_dict
from churn_kfp.data.landing import LandingZoneBusy
from churn_kfp.data.locking import LOCK_ENV, S3_LOCK_KEY, landing_zone_lock
from churn_kfp.data.storage import (
    SYNTHETIC_MANIFEST_KEY,
    LocalLandingZone,
    discover_partitions,
    open_landing_zone,
    read_frame,
    table_keys,
)

MAPPING = {
    "format": "csv",
    "delimiter": ",",
    "columns": {"customer_id": "cust", "timestamp": "date", "amount": "total"},
    "timestamp_format": "%Y-%m-%d",
}
JAN_MAR = "cust,date,total\n1,2025-01-05,10.5\n2,2025-01-20,20\n1,2025-02-03,5\n3,2025-03-15,7\n"


def mapping(**changes):
    return mapping_from_dict({**MAPPING, **changes})


def write(tmp_path, name, data):
    path = tmp_path / name
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def rows(zone, table="transactions"):
    frames = [read_frame(zone, p.key) for p in discover_partitions(zone, table)]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def snapshot(zone, prefix="raw/"):
    return {key: zone.read_bytes(key) for key in zone.list_keys(prefix)}


# --- all-or-nothing changes ---------------------------------------------------------------


class MoveFails(LocalLandingZone):
    """Fails the n-th move: a change cut short after its commit (as by a crash)."""

    def __init__(self, root, fail_at, error):
        super().__init__(root)
        self.moves, self.fail_at, self.error = 0, fail_at, error

    def move(self, source, target):
        self.moves += 1
        if self.moves == self.fail_at:
            raise self.error
        super().move(source, target)


@pytest.mark.parametrize("error", [OSError("disk gone"), KeyboardInterrupt()])
def test_a_change_cut_short_after_its_commit_is_finished_by_the_next_reader(tmp_path, error):
    zone = MoveFails(tmp_path / "lz", 3, error)
    files = [(f"raw/sales/year=2025/month={m:02d}/sales_2025_{m:02d}.csv", b"x\n") for m in (1, 2)]
    files += [("raw/customers/customers.csv", b"customer_id\n1\n")]
    if isinstance(error, KeyboardInterrupt):
        with pytest.raises(KeyboardInterrupt):
            staging.write_change(zone, files, "imports/c.json", {"what": "test"})
    else:
        warning = staging.write_change(zone, files, "imports/c.json", {"what": "test"})
        assert "committed" in warning and "disk gone" in warning
    assert not zone.exists("raw/customers/customers.csv")  # the third move never happened
    assert zone.list_keys(staging.STAGING_PREFIX)  # the pending record and the staged file

    # the next reader finishes the change before it lists the data
    assert [p.key for p in discover_partitions(zone, "transactions")] == [k for k, _ in files[:2]]
    assert zone.read_bytes("raw/customers/customers.csv") == b"customer_id\n1\n"
    assert zone.list_keys(staging.STAGING_PREFIX) == []


def test_an_interrupt_landing_just_after_the_commit_keeps_the_change(tmp_path):
    class InterruptedAfterCommit(LocalLandingZone):
        def write_bytes(self, key, data):
            super().write_bytes(key, data)
            if key == "imports/c.json":
                raise KeyboardInterrupt

    zone = InterruptedAfterCommit(tmp_path / "lz")
    customers = [("raw/customers/customers.csv", b"customer_id\n1\n")]
    with pytest.raises(KeyboardInterrupt):
        staging.write_change(zone, customers, "imports/c.json", {})
    assert table_keys(zone, "customers") == ["raw/customers/customers.csv"]  # settled
    assert zone.list_keys(staging.STAGING_PREFIX) == []


def test_an_interrupt_landing_after_a_staged_write_is_stored_rolls_that_file_back_too(tmp_path):
    """As SIGTERM during an S3 PUT whose object is stored before the call returns."""

    class InterruptedAfterSecondStagedWrite(LocalLandingZone):
        staged = 0

        def write_bytes(self, key, data):
            super().write_bytes(key, data)
            if key.startswith(staging.STAGING_PREFIX) and key.endswith(".csv"):
                self.staged += 1
                if self.staged == 2:
                    raise KeyboardInterrupt

    zone = InterruptedAfterSecondStagedWrite(tmp_path / "lz")
    files = [
        (f"raw/sales/year=2025/month={m:02d}/sales_2025_{m:02d}.csv", b"x\n") for m in (1, 2, 3)
    ]
    with pytest.raises(KeyboardInterrupt):
        staging.write_change(zone, files, "imports/c.json", {})
    assert zone.list_keys(staging.STAGING_PREFIX) == []
    assert zone.list_keys("raw/") == [] and not zone.exists("imports/c.json")


def test_an_uncommitted_change_is_invisible_and_removed_by_the_next_writer(tmp_path):
    zone = LocalLandingZone(tmp_path / "lz")
    import_file(write(tmp_path, "a.csv", JAN_MAR), mapping(), zone, progress=False)
    before = snapshot(zone)

    class Killed(BaseException):
        pass

    class DiesOnCommit(LocalLandingZone):
        def write_bytes(self, key, data):
            if key == "imports/late.json":
                raise Killed  # as if killed just before its commit record
            super().write_bytes(key, data)

    dying = DiesOnCommit(zone.root)
    with pytest.raises(Killed):
        staging.write_change(
            dying, [("raw/sales/year=2025/month=04/x.csv", b"a\n")], "imports/late.json", {}
        )
    assert snapshot(zone) == before and zone.list_keys(staging.STAGING_PREFIX) == []

    # the same, but the rollback is lost too (SIGKILL): readers still see none of it
    zone.write_bytes(
        "staging/dead.json",
        json.dumps(
            {
                "id": "dead",
                "commit_key": "imports/dead.json",
                "moves": [
                    [
                        "staging/dead/raw/sales/year=2025/month=04/x.csv",
                        "raw/sales/year=2025/month=04/x.csv",
                    ]
                ],
                "deletes": ["raw/sales/year=2025/month=01/sales_2025_01.parquet"],
                "writes": {},
            }
        ).encode(),
    )
    zone.write_bytes("staging/dead/raw/sales/year=2025/month=04/x.csv", b"cust\n")
    assert [p.key for p in discover_partitions(zone, "transactions")] == sorted(
        k for k in before if "sales" in k
    )
    staging.settle(zone, abandon=True)
    assert zone.list_keys(staging.STAGING_PREFIX) == [] and snapshot(zone) == before


# --- the lock -------------------------------------------------------------------------------

HOLD = textwrap.dedent(
    """
    import sys, time
    from churn_kfp.data.locking import landing_zone_lock
    from churn_kfp.data.storage import open_landing_zone
    with landing_zone_lock(open_landing_zone(sys.argv[1]), "a test holder"):
        print("held", flush=True)
        time.sleep(60)
    """
)


def hold_lock(uri):
    env = {k: v for k, v in os.environ.items() if k != LOCK_ENV}
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, uri], stdout=subprocess.PIPE, text=True, env=env
    )
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_busy_landing_zone_is_refused_naming_the_holder(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CHURN_HOME", str(tmp_path / "home"))
    landing = tmp_path / "home" / "landing"
    holder = hold_lock(str(landing))
    try:
        with pytest.raises(LandingZoneBusy) as caught:
            import_file(write(tmp_path, "a.csv", JAN_MAR), mapping(), LocalLandingZone(landing))
        assert f"a test holder (pid {holder.pid} on " in str(caught.value)
        assert "--landing-zone" in str(caught.value)

        assert main(["run", "-q"]) == 2  # refused before any pipeline step
        err = capsys.readouterr().err
        assert f"is busy: a test holder (pid {holder.pid}" in err
        assert main(["retrain", "-q"]) == 2  # the retraining loop waits its turn too
        err = capsys.readouterr().err
        assert f"is busy: a test holder (pid {holder.pid}" in err
        assert not (tmp_path / "home" / "kfp-local").exists()
        # a dry run reads only: it does not need the lock
        report = import_file(
            write(tmp_path, "b.csv", JAN_MAR), mapping(), str(landing), dry_run=True
        )
        assert report.status == "dry_run"
    finally:
        holder.kill()
        holder.wait()
    # the kernel released the lock with its dead holder (even SIGKILL)
    report = import_file(write(tmp_path, "a.csv", JAN_MAR), mapping(), str(landing), progress=False)
    assert report.status == "imported"


@pytest.mark.s3
def test_the_s3_lock_names_its_holder_and_outlives_a_dead_one_on_this_host(tmp_path, bucket):
    uri = f"s3://{bucket}/landing"
    zone = open_landing_zone(uri)
    holder = hold_lock(uri)
    try:
        with pytest.raises(LandingZoneBusy) as caught:
            import_file(write(tmp_path, "a.csv", JAN_MAR), mapping(), zone, progress=False)
        message = str(caught.value)
        assert f"a test holder (pid {holder.pid} on " in message
        assert f"delete {uri}/{S3_LOCK_KEY}" in message
    finally:
        holder.kill()  # SIGKILL: the lock object stays behind
        holder.wait()
    assert zone.exists(S3_LOCK_KEY)
    report = import_file(write(tmp_path, "a.csv", JAN_MAR), mapping(), zone, progress=False)
    assert report.status == "imported" and not zone.exists(S3_LOCK_KEY)


def test_the_lock_is_reentrant_for_the_holders_children_only(tmp_path):
    zone = LocalLandingZone(tmp_path / "lz")
    check = (
        "from churn_kfp.data.locking import landing_zone_lock as l;"
        "from churn_kfp.data.storage import LocalLandingZone as z;import sys\n"
        "with l(z(sys.argv[1]), 'child'): print('ok')"
    )
    with landing_zone_lock(zone, "parent"):
        assert os.environ[LOCK_ENV]
        child = subprocess.run(
            [sys.executable, "-c", check, str(zone.root)], capture_output=True, text=True
        )
        assert child.stdout.strip() == "ok", child.stderr  # a pipeline step of the holder
        stranger = {k: v for k, v in os.environ.items() if k != LOCK_ENV}
        other = subprocess.run(
            [sys.executable, "-c", check, str(zone.root)],
            capture_output=True,
            text=True,
            env=stranger,
        )
        assert other.returncode != 0 and "is busy: parent (pid" in other.stderr
    assert LOCK_ENV not in os.environ


# --- the synthetic generator ----------------------------------------------------------------


def test_churn_run_refuses_to_generate_into_imported_data(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CHURN_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("CHURN_LANDING_ZONE", raising=False)
    spec = write(tmp_path, "m.yaml", json.dumps(MAPPING))
    assert main(["import", str(spec), str(write(tmp_path, "a.csv", JAN_MAR)), "-q"]) == 0
    zone = LocalLandingZone(tmp_path / "home" / "landing")
    before = snapshot(zone, "")
    capsys.readouterr()

    assert main(["run", "-q"]) == 2
    err = capsys.readouterr().err
    assert "holds 3 data file(s) it did not write" in err and "1 import(s)" in err
    assert "churn run --no-generate" in err and "--landing-zone PATH" in err
    assert snapshot(zone, "") == before  # untouched, no synthetic row beside them
    assert not (tmp_path / "home" / "kfp-local").exists()  # no pipeline started


def test_the_generator_refuses_foreign_files_and_replaces_its_own_dataset_whole(tmp_path):
    zone = LocalLandingZone(tmp_path / "lz")
    datagen.generate(zone, n_customers=60, n_months=6, seed=1)
    six = {p.period for p in discover_partitions(zone, "transactions")}
    assert len(six) == 6

    summary = datagen.generate(zone, n_customers=60, n_months=1, seed=2)
    assert {p.period for p in discover_partitions(zone, "transactions")} == {"2025-01"}
    assert {p.period for p in discover_partitions(zone, "feedback")} == {"2025-01"}
    assert set(zone.list_keys("raw/")) == set(summary["keys"])  # no stale month left
    one = datagen.simulate(n_customers=60, n_months=1, seed=2)
    assert len(rows(zone)) == len(one.transactions)
    manifest = json.loads(zone.read_bytes(SYNTHETIC_MANIFEST_KEY))
    assert {p["key"] for p in manifest["partitions"]} == set(summary["keys"])

    # a file the generator did not write (copied in by hand): refused, nothing written
    zone.write_bytes("raw/sales/year=2025/month=02/sales_2025_02.csv", b"customer_id\n")
    before = snapshot(zone, "")
    with pytest.raises(datagen.ForeignDataError, match=r"1 data file\(s\) it did not write"):
        datagen.generate(zone, n_customers=60, n_months=6, seed=1)
    assert snapshot(zone, "") == before


def test_an_import_into_synthetic_data_is_refused_unless_fresh(tmp_path):
    zone = LocalLandingZone(tmp_path / "lz")
    datagen.generate(zone, n_customers=40, n_months=2, seed=1)
    before = snapshot(zone, "")
    source = write(tmp_path, "a.csv", JAN_MAR)
    with pytest.raises(ImportRefused, match="holds synthetic data") as caught:
        import_file(source, mapping(), zone, progress=False)
    assert "--fresh" in str(caught.value) and "--landing-zone" in str(caught.value)
    assert snapshot(zone, "") == before

    import_file(source, mapping(), zone, progress=False, fresh=True)
    assert len(rows(zone)) == 4 and rows(zone, "feedback").empty
    assert not zone.exists(SYNTHETIC_MANIFEST_KEY) and not zone.list_keys("raw/customers/")


# --- --fresh, --replace, returns, binary files ------------------------------------------------


def test_fresh_removes_only_the_contracts_files(tmp_path):
    zone = LocalLandingZone(tmp_path / "lz")
    import_file(write(tmp_path, "a.csv", JAN_MAR), mapping(), zone, progress=False)
    mine = {
        "README.txt": b"my notes",
        "raw/README.txt": b"where the exports come from",
        "raw/sales/notes.xlsx": b"PK\x03\x04 a workbook",
        "raw/sales/year=2025/month=01/checked.txt": b"ok",
    }
    for key, data in mine.items():
        zone.write_bytes(key, data)
    old = snapshot(zone, "imports/")

    later = "cust,date,total\n7,2025-06-01,3\n"
    import_file(write(tmp_path, "b.csv", later), mapping(), zone, progress=False, fresh=True)
    assert rows(zone)["customer_id"].tolist() == ["7"]
    assert {k: zone.read_bytes(k) for k in mine} == mine  # the user's files are still there
    assert not set(old) & set(zone.list_keys("imports/"))  # the old manifest went with its data


def test_replace_restores_the_months_a_later_file_replaced(tmp_path):
    zone = LocalLandingZone(tmp_path / "lz")
    first = write(tmp_path, "jan-mar.csv", JAN_MAR)
    import_file(first, mapping(), zone, progress=False)
    original = snapshot(zone)
    fix = write(tmp_path, "mar.csv", "cust,date,total\n9,2025-03-01,99\n")
    fixed = import_file(fix, mapping(), zone, progress=False, replace=True)
    assert rows(zone).loc[lambda f: f["timestamp"] >= "2025-03-01", "customer_id"].tolist() == ["9"]

    again = import_file(first, mapping(), zone, progress=False)
    assert again.status == "unchanged" and "--replace restores them" in again.message
    restored = import_file(first, mapping(), zone, progress=False, replace=True)
    assert restored.status == "imported"
    assert restored.replaced == ["raw/sales/year=2025/month=03/sales_2025_03.parquet"]
    march = rows(zone).loc[lambda f: f["timestamp"] >= "2025-03-01"]
    assert march["customer_id"].tolist() == ["3"] and march["amount"].tolist() == [7.0]
    assert snapshot(zone) == original
    replaced = json.loads(zone.read_bytes(fixed.manifest))
    assert replaced["partitions"] == []
    assert replaced["replaced_by"][-1]["keys"] == restored.replaced


def test_negative_quantities_and_amounts_without_a_returns_rule_are_left_out(tmp_path):
    text = (
        "cust,date,qty,total\n1,2025-01-05,2,10\n1,2025-01-06,-1,-5\n"
        "2,2025-01-07,1,3\n2,2025-01-08,1,-4\n"
    )
    columns = {**MAPPING["columns"], "quantity": "qty"}
    zone = LocalLandingZone(tmp_path / "lz")
    report = import_file(write(tmp_path, "o.csv", text), mapping(columns=columns), zone)
    # the data contract: returns are left out by default, and counted
    assert report.dropped == {"return_negative_quantity": 1, "return_negative_amount": 1}
    assert sorted(rows(zone)["amount"].tolist()) == [3.0, 10.0]
    assert (rows(zone)["quantity"] > 0).all()

    kept_zone = LocalLandingZone(tmp_path / "kept")
    rule = {"negative_quantity": True, "negative_amount": True, "action": "keep"}
    kept = import_file(
        write(tmp_path, "o2.csv", text), mapping(columns=columns, returns=rule), kept_zone
    )
    assert kept.dropped == {} and kept.notes == {"returns_kept": 2}
    assert sorted(rows(kept_zone)["amount"].tolist()) == [-5.0, -4.0, 3.0, 10.0]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (
            b"PK\x03\x04\x14\x00\x06\x00" + bytes(200),
            "not a text file: a zip archive (an Excel .xlsx",
        ),
        (b"\x1f\x8b\x08\x00" + bytes(100), "not a text file: gzip-compressed"),
        (bytes(range(256)) * 20, "binary content, not text"),
    ],
)
def test_a_binary_file_is_named_as_such_not_given_encoding_advice(tmp_path, data, expected):
    with pytest.raises(ImportRefused) as caught:
        import_file(write(tmp_path, "orders.csv", data), mapping(), str(tmp_path / "lz"))
    message = str(caught.value)
    assert expected in message and "latin-1" not in message and "cp1252" not in message
    latin = write(tmp_path, "latin.csv", "cust,date,total\nCafé,2025-01-01,1\n".encode("latin-1"))
    with pytest.raises(ImportRefused, match="encoding: "):
        import_file(latin, mapping(), str(tmp_path / "lz"))
