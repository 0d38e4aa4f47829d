"""A run stopped by SIGTERM (or Ctrl-C) says so in ``last-run.json``."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest


def _start_churn(home, *args):
    env = {**os.environ, "CHURN_HOME": str(home)}
    for name in ("CHURN_LANDING_ZONE", "MLFLOW_TRACKING_URI", "CHURN_ARTIFACT_ROOT"):
        env.pop(name, None)
    return subprocess.Popen(
        [sys.executable, "-m", "churn_kfp.cli.main", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.pipeline
@pytest.mark.timeout(300)
def test_sigterm_during_churn_run_records_an_interrupted_run(tmp_path):
    home = tmp_path / "home"
    proc = _start_churn(home, "run", "--quiet", "--customers", "200", "--months", "4")
    try:
        # wait for the first finished task: the pipeline is running, not starting up
        deadline = time.monotonic() + 240
        for line in proc.stdout:
            if "]" in line and ": success" in line:
                break
            assert time.monotonic() < deadline, "the run never finished a task"
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert "interrupted" in err
    last_run = json.loads((home / "last-run.json").read_text())
    assert last_run["status"] == "interrupted"
    assert last_run["pipeline"] == "churn-training"
    assert "signal 15" in last_run["error"]
