"""The S3 landing zone against a real S3 API server (SeaweedFS on 127.0.0.1, see conftest).

The protocol tests run twice, on the local folder backend and on the S3 backend, so both
backends pass the same suite. Then S3-only behaviour: bucket creation, clear errors for bad
credentials / unreachable endpoint / missing bucket, conditional writes on the real server,
racing ledger writers, and MLflow logging a model to the same server.
"""

from __future__ import annotations

import multiprocessing
import threading
import time
import uuid

import numpy as np
import pandas as pd
import pytest

from churn_kfp.data.landing import LandingZoneError, PreconditionFailed
from churn_kfp.data.s3storage import S3LandingZone, S3Settings, open_s3_landing_zone, parse_s3_uri
from churn_kfp.data.storage import (
    LocalLandingZone,
    discover_partitions,
    open_landing_zone,
    partition_key,
    read_frame,
    write_frame,
)
from churn_kfp.loop import ledger

pytestmark = pytest.mark.s3


@pytest.fixture(params=["local", "s3"])
def zone(request, tmp_path):
    if request.param == "local":
        return LocalLandingZone(tmp_path / "landing")
    bucket = request.getfixturevalue("bucket")
    return open_landing_zone(f"s3://{bucket}/landing")


# --------------------------------------------------------------------------- shared suite


def test_round_trip_bytes_and_frames(zone):
    zone.write_bytes("raw/x/a.bin", b"\x00\x01payload")
    assert zone.read_bytes("raw/x/a.bin") == b"\x00\x01payload"
    frame = pd.DataFrame({"customer_id": ["c1", "c2"], "amount": ["1.5", ""]})
    key = partition_key("transactions", 2025, 3)
    write_frame(zone, key, frame)
    back = read_frame(zone, key)
    assert back["customer_id"].tolist() == ["c1", "c2"]
    assert back["amount"].isna().tolist() == [False, True]


def test_listing_with_prefix_is_sorted_and_relative(zone):
    for key in ["raw/b/2.csv", "raw/a/1.csv", "raw/a/sub/3.csv", "state/ledger.json"]:
        zone.write_bytes(key, b"x")
    assert zone.list_keys("raw/a/") == ["raw/a/1.csv", "raw/a/sub/3.csv"]
    assert zone.list_keys("raw/") == ["raw/a/1.csv", "raw/a/sub/3.csv", "raw/b/2.csv"]
    assert zone.list_keys() == [
        "raw/a/1.csv",
        "raw/a/sub/3.csv",
        "raw/b/2.csv",
        "state/ledger.json",
    ]
    assert zone.list_keys("nothing/") == []


def test_partitions_are_discovered_oldest_first(zone):
    keys = [
        partition_key("transactions", 2025, 2),
        partition_key("transactions", 2024, 12),
        partition_key("transactions", 2025, 3, day=15),
        partition_key("feedback", 2025, 1),
    ]
    for key in keys:
        zone.write_bytes(key, b"customer_id\n")
    zone.write_bytes("raw/sales/year=2025/month=02/_SUCCESS", b"")  # not a data file
    parts = discover_partitions(zone, "transactions")
    assert [p.period for p in parts] == ["2024-12", "2025-02", "2025-03-15"]
    assert [p.key for p in parts] == [keys[1], keys[0], keys[2]]


def test_overwrite_replaces_the_whole_object(zone):
    zone.write_bytes("state/x.json", b"a much longer first version")
    zone.write_bytes("state/x.json", b"v2")
    assert zone.read_bytes("state/x.json") == b"v2"


def test_exists_and_delete(zone):
    assert not zone.exists("raw/x/a.csv")
    zone.write_bytes("raw/x/a.csv", b"1")
    assert zone.exists("raw/x/a.csv")
    zone.delete("raw/x/a.csv")
    assert not zone.exists("raw/x/a.csv")
    zone.delete("raw/x/a.csv")  # absent: no error
    with pytest.raises(FileNotFoundError):
        zone.read_bytes("raw/x/a.csv")
    assert zone.read_versioned("raw/x/a.csv") is None


def test_conditional_write_semantics(zone):
    tag1 = zone.write_conditional("state/x.json", b"1", if_match=None)
    with pytest.raises(PreconditionFailed):  # create-only: it exists now
        zone.write_conditional("state/x.json", b"again", if_match=None)
    data, tag = zone.read_versioned("state/x.json")
    assert (data, tag) == (b"1", tag1)
    tag2 = zone.write_conditional("state/x.json", b"2", if_match=tag1)
    assert tag2 != tag1
    with pytest.raises(PreconditionFailed):  # stale version
        zone.write_conditional("state/x.json", b"3", if_match=tag1)
    with pytest.raises(PreconditionFailed):  # a version of an object that does not exist
        zone.write_conditional("state/never.json", b"3", if_match=tag1)
    assert zone.read_versioned("state/x.json") == (b"2", tag2)


def test_ledger_marks_partitions_once(zone):
    for month in (1, 2):
        zone.write_bytes(partition_key("transactions", 2025, month), b"customer_id\n")
    assert [p.period for p in ledger.pending_partitions(zone)] == ["2025-01", "2025-02"]
    first = ledger.pending_partitions(zone)[:1]
    assert ledger.mark_processed(zone, first, run_id="r1") == [first[0].key]
    assert ledger.mark_processed(zone, first, run_id="r2") == []
    assert [p.period for p in ledger.pending_partitions(zone)] == ["2025-02"]


# --------------------------------------------------------------------------- S3 only


def test_uri_parsing_and_settings_from_env():
    assert parse_s3_uri("s3://bkt") == ("bkt", "")
    assert parse_s3_uri("s3://bkt/a/b/") == ("bkt", "a/b/")
    with pytest.raises(LandingZoneError, match="s3://bucket"):
        parse_s3_uri("s3:///nobucket")
    env = {
        "MLFLOW_S3_ENDPOINT_URL": "http://minio:9000",
        "AWS_ACCESS_KEY_ID": "k",
        "AWS_SECRET_ACCESS_KEY": "very-secret",
    }
    settings = S3Settings.from_env(env)
    assert (settings.host, settings.secure, settings.region) == ("minio:9000", False, "us-east-1")
    assert "very-secret" not in repr(settings)
    assert S3Settings.from_env({**env, "S3_ENDPOINT_URL": "https://s3.example"}).secure
    with pytest.raises(LandingZoneError, match="AWS_ACCESS_KEY_ID"):
        S3Settings.from_env({"S3_ENDPOINT_URL": "http://minio:9000"})
    with pytest.raises(LandingZoneError, match="http://host:port"):
        S3Settings.from_env({**env, "MLFLOW_S3_ENDPOINT_URL": "minio:9000"})


def test_prefix_keeps_zones_apart(bucket):
    a = open_landing_zone(f"s3://{bucket}/team-a")
    b = open_landing_zone(f"s3://{bucket}/team-b")
    a.write_bytes("raw/x.csv", b"a")
    assert b.list_keys() == []
    assert a.list_keys() == ["raw/x.csv"]
    root = open_landing_zone(f"s3://{bucket}")
    assert root.list_keys() == ["team-a/raw/x.csv"]
    with pytest.raises(LandingZoneError, match="invalid landing-zone key"):
        a.read_bytes("../team-b/raw/x.csv")


def test_readers_never_see_a_partial_object(bucket):
    zone = open_landing_zone(f"s3://{bucket}")
    old, new = b"A" * 3_000_000, b"B" * 3_000_001
    zone.write_bytes("raw/big.bin", old)
    seen: list[bytes] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def read_loop():
        try:
            while not stop.is_set():
                data = zone.read_bytes("raw/big.bin")
                seen.append(data[:1] if data in (old, new) else b"partial")
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    reader = threading.Thread(target=read_loop)
    reader.start()
    try:
        for _ in range(3):
            zone.write_bytes("raw/big.bin", new)
            zone.write_bytes("raw/big.bin", old)
    finally:
        stop.set()
        reader.join(30)
    assert not reader.is_alive() and errors == []
    assert len(seen) >= 3, "the reader hardly ran while objects were rewritten"
    assert set(seen) <= {b"A", b"B"}
    assert zone.read_bytes("raw/big.bin") == old


def test_bucket_creation(s3_env):
    name = f"churn-new-{uuid.uuid4().hex[:8]}"
    zone = S3LandingZone(name)
    assert zone.bucket_exists() is False
    with pytest.raises(LandingZoneError, match=f"bucket '{name}' does not exist"):
        open_s3_landing_zone(f"s3://{name}")
    assert zone.ensure_bucket() is True
    assert zone.ensure_bucket() is False
    assert zone.bucket_exists() is True
    open_s3_landing_zone(f"s3://{name}").write_bytes("a.txt", b"ok")


def test_missing_bucket_is_a_clear_error(s3_env):
    uri = "s3://churn-no-such-bucket"
    with pytest.raises(LandingZoneError, match="does not exist.*create-buckets Job"):
        open_landing_zone(uri)
    unchecked = open_s3_landing_zone(uri, check=False)
    with pytest.raises(LandingZoneError, match="does not exist"):
        unchecked.list_keys("raw/")
    with pytest.raises(LandingZoneError, match="does not exist"):
        unchecked.write_bytes("raw/a.csv", b"x")


def test_wrong_secret_key_is_a_clear_error(s3_server, bucket, monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    with pytest.raises(LandingZoneError) as info:
        open_landing_zone(f"s3://{bucket}")
    message = str(info.value)
    assert "SignatureDoesNotMatch" in message
    assert "AWS_SECRET_ACCESS_KEY" in message and "churn-s3-credentials" in message
    assert "not-the-secret" not in message


def test_unknown_access_key_is_a_clear_error(bucket, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "nobody")
    with pytest.raises(LandingZoneError, match="InvalidAccessKeyId.*AWS_ACCESS_KEY_ID"):
        open_landing_zone(f"s3://{bucket}")


def test_unreachable_endpoint_fails_fast_and_clearly(s3_env, monkeypatch):
    import socket

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    monkeypatch.setenv("S3_ENDPOINT_URL", f"http://127.0.0.1:{closed_port}")
    zone = S3LandingZone("churn-any", connect_timeout=1, read_timeout=2, retries=1)
    start = time.monotonic()
    with pytest.raises(LandingZoneError, match=rf"cannot reach the S3 endpoint .*:{closed_port}"):
        zone.check()
    with pytest.raises(LandingZoneError, match="S3_ENDPOINT_URL"):
        zone.read_bytes("raw/a.csv")
    assert time.monotonic() - start < 10


def test_stale_etag_gets_precondition_failed_from_the_server(bucket):
    zone = open_landing_zone(f"s3://{bucket}")
    _, tag = zone.read_versioned("state/ledger.json") or (None, None)
    assert tag is None
    mine = zone.write_conditional("state/ledger.json", b'{"partitions": {}}', if_match=None)
    other = zone.write_conditional("state/ledger.json", b'{"partitions": {"k": 1}}', mine)
    with pytest.raises(PreconditionFailed, match="changed since it was read"):
        zone.write_conditional("state/ledger.json", b'{"partitions": {"lost": 1}}', mine)
    assert zone.read_versioned("state/ledger.json")[1] == other


class _SlowCAS:
    """Delegates to a zone but widens the read-to-write window so writers really collide."""

    def __init__(self, zone, delay_s):
        self._zone, self._delay = zone, delay_s
        self.conflicts = 0
        self._lock = threading.Lock()

    def __getattr__(self, name):
        return getattr(self._zone, name)

    def write_conditional(self, key, data, if_match):
        time.sleep(self._delay)
        try:
            return self._zone.write_conditional(key, data, if_match)
        except PreconditionFailed:
            with self._lock:
                self.conflicts += 1
            raise


def _seed_months(zone, months):
    for month in months:
        zone.write_bytes(partition_key("transactions", 2025, month), b"customer_id\n")


def test_racing_threads_lose_no_ledger_update(bucket):
    months = list(range(1, 7))
    base = open_landing_zone(f"s3://{bucket}")
    _seed_months(base, months)
    zone = _SlowCAS(base, delay_s=0.05)
    barrier = threading.Barrier(len(months))
    errors: list[BaseException] = []

    def run(month):
        try:
            part = next(p for p in ledger.pending_partitions(zone) if p.month == month)
            barrier.wait(10)
            ledger.mark_processed(zone, [part], run_id=f"run-{month}", attempts=30)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(m,)) for m in months]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not any(thread.is_alive() for thread in threads) and errors == []
    done, _ = ledger.read_ledger(base)
    assert sorted(v["run_id"] for v in done.values()) == sorted(f"run-{m}" for m in months)
    assert zone.conflicts > 0, "the writers never collided: the test proved nothing"
    assert ledger.pending_partitions(base) == []


def _mark_one_process(uri, month):
    zone = open_landing_zone(uri)
    part = next(p for p in ledger.pending_partitions(zone) if p.month == month)
    ledger.mark_processed(zone, [part], run_id=f"proc-{month}", attempts=30)


def test_racing_processes_lose_no_ledger_update(bucket):
    uri = f"s3://{bucket}/procs"
    months = list(range(1, 9))
    _seed_months(open_landing_zone(uri), months)
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_mark_one_process, args=(uri, m)) for m in months]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(60)
        assert proc.exitcode == 0
    done, _ = ledger.read_ledger(open_landing_zone(uri))
    assert sorted(v["run_id"] for v in done.values()) == sorted(f"proc-{m}" for m in months)


@pytest.mark.filterwarnings("ignore:Hint. Inferred schema contains integer")
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_mlflow_logs_registers_and_loads_a_model_on_s3(bucket, tmp_path):
    """MLflow with ``MLFLOW_S3_ENDPOINT_URL`` and an ``s3://`` experiment artifact location."""
    import mlflow
    from sklearn.linear_model import LogisticRegression

    from churn_kfp.registry import register as registry

    previous = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    tracking_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    try:
        registry.connect(tracking_uri, f"s3://{bucket}/mlflow", experiment="churn-s3-test")
        rng = np.random.default_rng(0)
        x = pd.DataFrame({"a": rng.normal(size=60), "b": rng.normal(size=60)})
        y = (x["a"] + 0.1 * rng.normal(size=60) > 0).astype(int)
        model = LogisticRegression().fit(x, y)
        with mlflow.start_run():
            info = mlflow.sklearn.log_model(
                model,
                name="model",
                registered_model_name="churn-s3-test-model",
                input_example=x.head(3),
                pip_requirements=["scikit-learn"],
            )
        location = mlflow.get_logged_model(info.model_id).artifact_location
        assert location.startswith(f"s3://{bucket}/mlflow/")
        assert location.endswith("/artifacts")
        from churn_kfp.registry.loading import load_pyfunc  # skops only, no pickle flag

        local = mlflow.artifacts.download_artifacts("models:/churn-s3-test-model/1")
        loaded = load_pyfunc(local, model_name="churn-s3-test-model", version="1")
        np.testing.assert_array_equal(loaded.predict(x.head(5)), model.predict(x.head(5)))
        # The files KServe's storage initializer will download are really in the bucket.
        keys = open_landing_zone(f"s3://{bucket}").list_keys("mlflow/")
        relative = location[len(f"s3://{bucket}/") :]
        assert f"{relative}/MLmodel" in keys
    finally:
        mlflow.set_tracking_uri(previous[0])
        mlflow.set_registry_uri(previous[1])
