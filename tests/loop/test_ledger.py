import multiprocessing

import pytest

from churn_kfp.data.storage import LocalLandingZone, PreconditionFailed, partition_key
from churn_kfp.loop import ledger


def _zone_with_months(tmp_path, months):
    zone = LocalLandingZone(tmp_path)
    for month in months:
        zone.write_bytes(partition_key("transactions", 2025, month), b"customer_id\n")
    return zone


def test_new_partitions_are_pending_until_marked(tmp_path):
    zone = _zone_with_months(tmp_path, [1, 2])
    assert [p.period for p in ledger.pending_partitions(zone)] == ["2025-01", "2025-02"]
    added = ledger.mark_processed(zone, ledger.pending_partitions(zone)[:1], run_id="r1")
    assert added == [partition_key("transactions", 2025, 1)]
    assert [p.period for p in ledger.pending_partitions(zone)] == ["2025-02"]


def test_marking_twice_records_nothing_new(tmp_path):
    zone = _zone_with_months(tmp_path, [1])
    parts = ledger.pending_partitions(zone)
    ledger.mark_processed(zone, parts, run_id="r1")
    assert ledger.mark_processed(zone, parts, run_id="r2") == []
    done, _ = ledger.read_ledger(zone)
    assert done[parts[0].key]["run_id"] == "r1"


def test_conditional_write_refuses_a_stale_version(tmp_path):
    zone = LocalLandingZone(tmp_path)
    tag = zone.write_conditional("state/x.json", b"1", if_match=None)
    zone.write_conditional("state/x.json", b"2", if_match=tag)
    with pytest.raises(PreconditionFailed):
        zone.write_conditional("state/x.json", b"3", if_match=tag)
    with pytest.raises(PreconditionFailed):
        zone.write_conditional("state/x.json", b"3", if_match=None)
    assert zone.read_bytes("state/x.json") == b"2"


def _mark_one(root, month):
    zone = LocalLandingZone(root)
    part = next(p for p in ledger.pending_partitions(zone) if p.month == month)
    ledger.mark_processed(zone, [part], run_id=f"run-{month}")


def test_racing_runs_do_not_lose_updates(tmp_path):
    months = list(range(1, 9))
    _zone_with_months(tmp_path, months)
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_mark_one, args=(str(tmp_path), m)) for m in months]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(30)
        assert proc.exitcode == 0
    done, _ = ledger.read_ledger(LocalLandingZone(tmp_path))
    assert len(done) == len(months)
    assert ledger.pending_partitions(LocalLandingZone(tmp_path)) == []


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b'{"partitions": {"raw/sales/year=2025/month=01/x.csv": {"per', "not valid JSON"),
        (b"[]", "found list '[]'"),
        (b"{}", "found dict '{}'"),
        (b'{"partitions": ["raw/sales/x.csv"]}', "found dict"),
        (b"\xff\xfe\x00garbage", "not valid JSON"),
    ],
    ids=["truncated", "list", "empty-object", "wrong-shape", "binary"],
)
def test_a_corrupted_ledger_names_the_file_and_the_repair(tmp_path, content, problem):
    zone = _zone_with_months(tmp_path, [1])
    zone.write_bytes(ledger.LEDGER_KEY, content)
    for read in (
        lambda: ledger.read_ledger(zone),
        lambda: ledger.pending_partitions(zone),
        lambda: ledger.mark_processed(zone, [], run_id="r"),
    ):
        with pytest.raises(ledger.LedgerError) as excinfo:
            read()
        message = str(excinfo.value)
        assert f"{tmp_path}/state/ledger.json is corrupted" in message
        assert problem in message
        assert "Restore it from a backup" in message
    assert zone.read_bytes(ledger.LEDGER_KEY) == content  # nothing overwritten
