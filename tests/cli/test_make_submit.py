"""``make submit`` / ``make schedule`` as a user types them, against a STAND-IN KFP API.

The stand-in (tests/support/stand_ins.py) is not the real KFP API server: it answers the
v2beta1 endpoints these commands call and records every request.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml
from support.cluster import CONNECTION_ENV

from churn_kfp.core.config import TRAINING_PIPELINE

pytestmark = pytest.mark.slow  # each test runs make, which compiles in fresh processes

REPO = Path(__file__).resolve().parents[2]
API = "/apis/v2beta1"


def _make(tmp_path: Path, *targets: str, **variables: str) -> subprocess.CompletedProcess:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in (*CONNECTION_ENV, "CHURN_IMAGE", "IMAGE", "DEMO") and not k.startswith("MAKE")
    }
    env["CHURN_GIT_COMMIT"] = "0123456789abcdef0123456789abcdef01234567"
    env["CHURN_HOME"] = str(tmp_path / "home")
    assignments = [
        f"{k}={v}" for k, v in {"PIPELINES_DIR": str(tmp_path / "out"), **variables}.items()
    ]
    return subprocess.run(
        # -o: the venv is what it is; never reinstall it from a test
        ["make", "--no-print-directory", "-o", ".venv/.installed", *targets, *assignments],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.parametrize("target", ["submit", "schedule"])
def test_without_an_image_make_stops_before_the_server_with_the_fix(kfp_server, tmp_path, target):
    done = _make(tmp_path, target, KFP_HOST=kfp_server.url)
    assert done.returncode != 0
    assert "placeholder image ghcr.io/churn-kfp/churn-kfp:" in done.stderr
    assert "IMAGE=registry.example.com/ml/churn-kfp:0.1.0 make images" in done.stderr
    assert kfp_server.requests == []


def test_make_submit_refuses_a_backend_older_than_the_floor(make_kfp_server, tmp_path):
    server = make_kfp_server(tag_name="2.5.0")
    done = _make(tmp_path, "submit", KFP_HOST=server.url, IMAGE="registry.example/ml/churn:1")
    assert done.returncode != 0
    assert "older than 2.16" in done.stderr
    assert [r.path for r in server.requests] == [f"{API}/healthz"]


def test_make_submit_demo_runs_the_image_deploys_and_generates(kfp_server, tmp_path):
    image = "registry.example/ml/churn-kfp@sha256:" + "0f" * 32
    done = _make(tmp_path, "submit", KFP_HOST=kfp_server.url, IMAGE=image, DEMO="1")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    (upload,) = kfp_server.calls("POST", f"{API}/pipelines/upload")
    spec = next(yaml.safe_load_all(upload.files["uploadfile"]))
    assert {e["container"]["image"] for e in spec["deploymentSpec"]["executors"].values()} == {
        image
    }
    defaults = {
        name: p.get("defaultValue")
        for name, p in spec["root"]["inputDefinitions"]["parameters"].items()
    }
    assert defaults["deploy_mode"] == "cluster" and defaults["generate"] is False
    (run,) = kfp_server.calls("POST", f"{API}/runs")
    assert run.json["runtime_config"]["parameters"] == {"generate": True}
    assert (tmp_path / "out" / f"{TRAINING_PIPELINE}.yaml").is_file()
