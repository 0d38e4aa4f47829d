"""A ``churn import`` killed mid-write (SIGTERM, SIGKILL): all or nothing, on disk and in S3.

Each case runs the real command line in a subprocess on a large daily-partitioned export,
waits until the import is in the phase under test, signals it, then checks what the next
ingestion sees and that running the same import again succeeds without ``--replace``.
The subprocess's storage calls are slowed by a few milliseconds each (a throttle around
the backend's ``write_bytes``/``move``, nothing else changed) so that the signal lands in
the phase under test on any machine.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pandas as pd
import pytest

from churn_kfp.cli.main import main
from churn_kfp.data.locking import LOCK_ENV
from churn_kfp.data.staging import STAGING_PREFIX
from churn_kfp.data.storage import open_landing_zone
from churn_kfp.data.validation import ingest

MAPPING = {
    "format": "csv",
    "delimiter": ",",
    "columns": {"customer_id": "cust", "timestamp": "date", "amount": "total"},
    "timestamp_format": "%Y-%m-%d",
    "partition": "day",
}

THROTTLED_CLI = textwrap.dedent(
    """
    import sys, time
    from churn_kfp.data.s3storage import S3LandingZone
    from churn_kfp.data.storage import LocalLandingZone

    delay = float(sys.argv[1])
    for backend in (LocalLandingZone, S3LandingZone):
        for name in ("write_bytes", "move"):
            def slowed(self, *args, _call=getattr(backend, name)):
                time.sleep(delay)
                return _call(self, *args)
            setattr(backend, name, slowed)

    from churn_kfp.cli.main import main
    sys.exit(main(sys.argv[2:]))
    """
)


def export(path, days, rows_per_day, start):
    """A clean export: distinct rows, one file, ``days`` days from ``start``."""
    n = days * rows_per_day
    dates = pd.date_range(start, periods=days, freq="D").strftime("%Y-%m-%d")
    frame = pd.DataFrame(
        {
            "cust": np.arange(n) % 997,
            "date": np.repeat(dates, rows_per_day),
            "total": np.round(1 + np.arange(n) * 0.01, 2),
        }
    )
    frame.to_csv(path, index=False)
    return n


def transaction_rows(uri):
    return ingest(open_landing_zone(uri)).report["transactions"]["rows_read"]


def staged_files(zone):
    return [k for k in zone.list_keys(STAGING_PREFIX) if k.count("/") > 1]


def start_import(tmp_path, uri, spec, source, delay):
    env = {k: v for k, v in os.environ.items() if k != LOCK_ENV}
    script = tmp_path / "throttled_cli.py"
    script.write_text(THROTTLED_CLI)
    command = [sys.executable, str(script), str(delay), "import", str(spec), str(source)]
    return subprocess.Popen(
        [*command, "--landing-zone", uri, "-q"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def wait_for(proc, condition, what, timeout=180.0):
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            pytest.fail(f"the import ended before {what}: {proc.stdout.read()}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


def run_case(tmp_path, uri, kill_signal, phase, days, rows_per_day):
    zone = open_landing_zone(uri)
    spec = tmp_path / "daily.yaml"
    spec.write_text(json.dumps(MAPPING))
    base = tmp_path / "base.csv"
    base_rows = export(base, 3, 5, "2023-01-01")
    assert main(["import", str(spec), str(base), "--landing-zone", uri, "-q"]) == 0
    big = tmp_path / "big.csv"
    big_rows = export(big, days, rows_per_day, "2024-01-01")
    manifests_before = set(zone.list_keys("imports/"))

    proc = start_import(tmp_path, uri, spec, big, delay=0.004)
    committed = lambda: set(zone.list_keys("imports/")) != manifests_before  # noqa: E731
    if phase == "staging":  # files staged, no commit record yet
        wait_for(proc, lambda: len(staged_files(zone)) >= 20, "20 staged files")
        assert not committed()
    else:  # committed, files still being moved into place
        wait_for(proc, committed, "the commit record")
        assert len(staged_files(zone)) >= 20, "the moves ended before the kill"
    proc.send_signal(kill_signal)
    output = proc.communicate(timeout=120)[0]

    if kill_signal == signal.SIGTERM:
        assert proc.returncode == 130, output  # handled like Ctrl-C
        assert "interrupted" in output
        assert zone.list_keys(STAGING_PREFIX) == []  # rolled back at once
    else:
        assert proc.returncode == -signal.SIGKILL
    expected = base_rows if phase == "staging" else base_rows + big_rows
    assert transaction_rows(uri) == expected  # none or all of the export, never a part

    # the same import again, without --replace
    assert main(["import", str(spec), str(big), "--landing-zone", uri, "-q"]) == 0
    assert transaction_rows(uri) == base_rows + big_rows
    assert zone.list_keys(STAGING_PREFIX) == []


@pytest.mark.slow
@pytest.mark.parametrize(
    ("kill_signal", "phase"),
    [(signal.SIGTERM, "staging"), (signal.SIGKILL, "staging"), (signal.SIGKILL, "applying")],
    ids=["sigterm-while-staging", "sigkill-while-staging", "sigkill-after-commit"],
)
def test_killed_import_on_local_disk(tmp_path, kill_signal, phase):
    run_case(tmp_path, str(tmp_path / "landing"), kill_signal, phase, days=400, rows_per_day=400)


@pytest.mark.s3
@pytest.mark.slow
@pytest.mark.parametrize(
    ("kill_signal", "phase"),
    [(signal.SIGTERM, "staging"), (signal.SIGKILL, "staging"), (signal.SIGKILL, "applying")],
    ids=["sigterm-while-staging", "sigkill-while-staging", "sigkill-after-commit"],
)
def test_killed_import_in_s3(tmp_path, bucket, kill_signal, phase):
    run_case(tmp_path, f"s3://{bucket}/landing", kill_signal, phase, days=90, rows_per_day=200)
