"""``churn submit`` / ``churn schedule`` against a STAND-IN for the KFP v2beta1 API server.

The stand-in (tests/support/stand_ins.py) is not the real KFP API server: it implements
the endpoints these commands call, with the real request/response shapes, and records
every request. The commands run through the real ``kfp.Client``.

Slow as a whole (``make test`` runs it, ``make test-fast`` does not): most tests compile
both pipelines for the test image in a fresh process, several seconds each.
"""

import socket
import time

import pytest
import yaml
from stand_ins import HttpError

from churn_kfp.cli.main import main
from churn_kfp.core.config import RETRAINING_PIPELINE, TRAINING_PIPELINE
from churn_kfp.orchestration import kfp_client
from churn_kfp.pipelines import registry

pytestmark = pytest.mark.slow

API = "/apis/v2beta1"


TEST_IMAGE = "registry.example/ml/churn-kfp:test"


@pytest.fixture
def env(clean_kfp_env):
    """Clean connection env and a published-looking image."""
    clean_kfp_env.setenv("CHURN_IMAGE", TEST_IMAGE)
    return clean_kfp_env


def test_the_real_pipelines_are_registered():
    from churn_kfp.pipelines.retraining import retraining_pipeline
    from churn_kfp.pipelines.training import training_pipeline

    assert registry.PIPELINES[TRAINING_PIPELINE] is training_pipeline
    assert registry.PIPELINES[RETRAINING_PIPELINE] is retraining_pipeline


def _docs(data: bytes | str) -> list:
    return [d for d in yaml.safe_load_all(data) if d is not None]


def _cli(capsys, *argv) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --------------------------------------------------------------------------- cron


def test_schedule_rejects_malformed_cron_before_any_request(env, kfp_server, capsys):
    code, _, err = _cli(capsys, "schedule", "--cron", "0 25 * * *", "--host", kfp_server.url)
    assert code == 2
    assert "hours 25 is outside 0-23" in err
    assert kfp_server.requests == []


# --------------------------------------------------------------------------- connection


def test_missing_host_says_what_to_set(env, capsys):
    code, _, err = _cli(capsys, "submit")
    assert code == 2
    assert "no Kubeflow Pipelines host" in err and "KFP_HOST" in err and "--host" in err


def test_host_without_scheme_is_rejected(env, capsys):
    code, _, err = _cli(capsys, "submit", "--host", "localhost:8080")
    assert code == 2
    assert "http://localhost:8080" in err


def test_unreachable_host_fails_fast_and_names_it(env, capsys, tmp_path):
    host = f"http://127.0.0.1:{_free_port()}"  # nothing listens: connection refused
    started = time.monotonic()
    code, _, err = _cli(capsys, "submit", "--host", host, "--out-dir", str(tmp_path))
    assert code == 1
    assert time.monotonic() - started < 15
    assert f"cannot reach the Kubeflow Pipelines API at {host}" in err
    assert "KFP_HOST" in err


def test_login_redirect_asks_for_a_token(env, kfp_server, capsys, tmp_path):
    def gateway(rec):  # what an oauth2-proxy / dex gateway answers without credentials
        raise HttpError(302, {}, {"Location": "/oauth2/start?rd=%2Fpipeline"})

    kfp_server.route = gateway
    code, _, err = _cli(capsys, "submit", "--host", kfp_server.url, "--out-dir", str(tmp_path))
    assert code == 2
    assert "redirected to a login page (/oauth2/start" in err and "KFP_TOKEN" in err


def test_multi_user_wants_token_then_namespace(env, make_kfp_server, capsys, tmp_path):
    server = make_kfp_server(multi_user=True, token="s3cret")
    code, _, err = _cli(capsys, "submit", "--host", server.url, "--out-dir", str(tmp_path))
    assert code == 2
    assert "HTTP 401" in err and "KFP_TOKEN" in err

    env.setenv("KFP_TOKEN", "s3cret")
    code, _, err = _cli(capsys, "submit", "--host", server.url, "--out-dir", str(tmp_path))
    assert code == 2
    assert "multi-user" in err and "KFP_NAMESPACE" in err


def test_multi_user_sends_token_and_namespace(env, make_kfp_server, capsys, tmp_path):
    server = make_kfp_server(multi_user=True, token="from-a-file")
    token_file = tmp_path / "token"
    token_file.write_text("from-a-file\n")
    env.setenv("KF_PIPELINES_SA_TOKEN_PATH", str(token_file))
    env.setenv("KFP_HOST", server.url)
    env.setenv("KFP_NAMESPACE", "team-churn")
    code, out, err = _cli(
        capsys, "submit", "--pipeline", TRAINING_PIPELINE, "--out-dir", str(tmp_path / "b")
    )
    assert code == 0, err
    assert f"service-account token {token_file}" in out
    assert all(r.headers["authorization"] == "Bearer from-a-file" for r in server.requests)
    (upload,) = server.calls("POST", f"{API}/pipelines/upload")
    assert upload.q("namespace") == "team-churn"
    (experiment,) = server.experiments.values()
    assert experiment["namespace"] == "team-churn"


# --------------------------------------------------------------------------- submit


def test_submit_uploads_the_compiled_spec_and_runs_that_version(env, kfp_server, capsys, tmp_path):
    out_dir = tmp_path / "build"
    code, out, err = _cli(
        capsys,
        "submit",
        "--host",
        kfp_server.url,
        "--pipeline",
        TRAINING_PIPELINE,
        "--experiment",
        "churn-test",
        "--param",
        "n_customers=300",
        "--param",
        "generate=false",
        "--param",
        "min_f1=0.6",
        "--param",
        "landing_zone=s3://landing",
        "--out-dir",
        str(out_dir),
    )
    assert code == 0, err
    compiled = out_dir / f"{TRAINING_PIPELINE}.yaml"
    expected = _docs(compiled.read_text())
    version = kfp_client.version_name(compiled)
    assert version.startswith("0") and "-0123456-" in version

    # a new pipeline: upload (first version named after the pipeline), then the named version
    (upload,) = kfp_server.calls("POST", f"{API}/pipelines/upload")
    assert upload.q("name") == TRAINING_PIPELINE
    assert _docs(upload.files["uploadfile"]) == expected
    (upload_version,) = kfp_server.calls("POST", f"{API}/pipelines/upload_version")
    assert upload_version.q("name") == version
    assert _docs(upload_version.files["uploadfile"]) == expected
    assert [v["name"] for v in kfp_server.versions_of(TRAINING_PIPELINE)] == [
        TRAINING_PIPELINE,
        version,
    ]

    (create_run,) = kfp_server.calls("POST", f"{API}/runs")
    body = create_run.json
    ref = body["pipeline_version_reference"]
    assert kfp_server.versions[ref["pipeline_version_id"]]["name"] == version
    assert kfp_server.specs[ref["pipeline_version_id"]] == expected
    assert body["runtime_config"]["parameters"] == {
        "n_customers": 300,
        "generate": False,
        "min_f1": 0.6,
        "landing_zone": "s3://landing",
    }
    assert kfp_server.experiments[body["experiment_id"]]["display_name"] == "churn-test"
    assert f"version {version}" in out and "uploaded" in out
    (run,) = kfp_server.runs.values()
    assert f"{kfp_server.url}/#/runs/details/{run['run_id']}" in out


def test_submit_twice_reuses_the_version(env, kfp_server, capsys, tmp_path):
    args = ("submit", "--host", kfp_server.url, "--pipeline", TRAINING_PIPELINE)
    assert _cli(capsys, *args, "--out-dir", str(tmp_path / "a"))[0] == 0
    uploads = len(kfp_server.calls("POST", f"{API}/pipelines/upload"))
    code, out, err = _cli(capsys, *args, "--out-dir", str(tmp_path / "b"))
    assert code == 0, err
    assert "reused (already on the server)" in out
    assert len(kfp_server.calls("POST", f"{API}/pipelines/upload")) == uploads == 1
    assert len(kfp_server.calls("POST", f"{API}/pipelines/upload_version")) == 1
    assert len(kfp_server.versions_of(TRAINING_PIPELINE)) == 2
    first, second = (
        r.json["pipeline_version_reference"] for r in kfp_server.calls("POST", f"{API}/runs")
    )
    assert first == second
    assert len(kfp_server.experiments) == 1


def test_submit_all_uploads_every_registered_pipeline(env, kfp_server, capsys, tmp_path):
    code, out, err = _cli(
        capsys, "submit", "--host", kfp_server.url, "--upload-only", "--out-dir", str(tmp_path)
    )
    assert code == 0, err
    uploaded = {r.q("name") for r in kfp_server.calls("POST", f"{API}/pipelines/upload")}
    assert uploaded == set(registry.PIPELINES)
    for name in registry.PIPELINES:
        (named,) = [v for v in kfp_server.versions_of(name) if v["name"] != name]
        assert kfp_server.specs[named["pipeline_version_id"]] == _docs(
            (tmp_path / f"{name}.yaml").read_text()
        )
    assert kfp_server.calls("POST", f"{API}/runs") == []


def test_version_uploaded_concurrently_is_reused(env, kfp_server, capsys, tmp_path):
    args = ("submit", "--host", kfp_server.url, "--pipeline", TRAINING_PIPELINE, "--upload-only")
    assert _cli(capsys, *args, "--out-dir", str(tmp_path))[0] == 0
    real = kfp_client.find_version_id
    calls = []

    def racing(*a, **kw):  # first look-up misses, as if another submit uploaded meanwhile
        calls.append(a)
        return None if len(calls) == 1 else real(*a, **kw)

    env.setattr(kfp_client, "find_version_id", racing)
    code, out, err = _cli(capsys, *args, "--out-dir", str(tmp_path))
    assert code == 0, err
    assert len(kfp_server.calls("POST", f"{API}/pipelines/upload_version")) == 2  # 2nd: 409
    assert len(kfp_server.versions_of(TRAINING_PIPELINE)) == 2
    assert "reused" in out


@pytest.mark.parametrize(
    ("param", "says"),
    [
        ("no_such=1", "unknown parameter(s) no_such"),
        ("n_customers=many", "expects number integer"),
        ("generate=maybe", "expects boolean"),
        ("novalue", "expected NAME=VALUE"),
    ],
)
def test_bad_params_are_rejected_before_upload(env, kfp_server, capsys, tmp_path, param, says):
    code, _, err = _cli(
        capsys,
        "submit",
        "--host",
        kfp_server.url,
        "--pipeline",
        TRAINING_PIPELINE,
        "--param",
        param,
        "--out-dir",
        str(tmp_path),
    )
    assert code == 2
    assert says in err
    assert kfp_server.requests == []


# --------------------------------------------------------------------------- schedule


def _schedule(capsys, server, tmp_path, cron="0 6 1 * *", *extra):
    return _cli(
        capsys,
        "schedule",
        "--cron",
        cron,
        "--host",
        server.url,
        "--param",
        "landing_zone=s3://landing",
        "--out-dir",
        str(tmp_path),
        *extra,
    )


def test_schedule_creates_a_six_field_single_concurrency_recurring_run(
    env, kfp_server, capsys, tmp_path
):
    code, out, err = _schedule(capsys, kfp_server, tmp_path)
    assert code == 0, err
    (create,) = kfp_server.calls("POST", f"{API}/recurringruns")
    body = create.json
    assert body["trigger"]["cron_schedule"]["cron"] == "0 0 6 1 * *"
    assert body["max_concurrency"] == 1
    assert body["no_catchup"] is True
    assert body["mode"] == "ENABLE"
    assert body["display_name"] == f"{RETRAINING_PIPELINE}-monthly"
    assert body["runtime_config"]["parameters"] == {"landing_zone": "s3://landing"}
    compiled = tmp_path / f"{RETRAINING_PIPELINE}.yaml"
    version_id = body["pipeline_version_reference"]["pipeline_version_id"]
    assert kfp_server.versions[version_id]["name"] == kfp_client.version_name(compiled)
    assert kfp_server.specs[version_id] == _docs(compiled.read_text())
    assert "sent to KFP as '0 0 6 1 * *'" in out
    assert "run `churn schedule` again" in out


def test_schedule_replaces_same_name_recurring_runs_on_every_page(
    env, make_kfp_server, capsys, tmp_path
):
    """Every list the client reads is paged; runs beyond the first page are found too.

    Mutation that makes this fail: in ``kfp_client.find_recurring_runs``, return after the
    first page (ignore ``next_page_token``): three of the five old runs then survive.
    """
    server = make_kfp_server(page_size_cap=2)
    name = f"{RETRAINING_PIPELINE}-monthly"
    for i in range(5):  # left behind by earlier schedules (e.g. a crash between calls)
        server.recurring_runs[f"old-{i}"] = {
            "recurring_run_id": f"old-{i}",
            "display_name": name,
            "namespace": "",
            "experiment_id": "",
        }
    code, out, err = _schedule(capsys, server, tmp_path)
    assert code == 0, err
    (current,) = server.recurring_runs_named(name)
    assert not current["recurring_run_id"].startswith("old-")
    deleted = {r.path.rsplit("/", 1)[1] for r in server.calls("DELETE")}
    assert deleted == {f"old-{i}" for i in range(5)}
    listed = server.calls("GET", f"{API}/recurringruns")
    assert len(listed) >= 3  # five runs on pages of two


def test_schedule_again_deletes_then_recreates(env, kfp_server, capsys, tmp_path):
    assert _schedule(capsys, kfp_server, tmp_path)[0] == 0
    (first,) = kfp_server.recurring_runs.values()
    code, out, err = _schedule(
        capsys, kfp_server, tmp_path, "0 0 7 * * MON", "--param", "landing_zone=s3://other"
    )
    assert code == 0, err
    (current,) = kfp_server.recurring_runs_named(f"{RETRAINING_PIPELINE}-monthly")
    assert current["recurring_run_id"] != first["recurring_run_id"]
    assert current["trigger"]["cron_schedule"]["cron"] == "0 0 7 * * MON"
    assert current["runtime_config"]["parameters"] == {"landing_zone": "s3://other"}
    assert kfp_server.max_same_name_recurring_runs == 1
    order = [
        (r.method, r.path)
        for r in kfp_server.requests
        if r.path.startswith(f"{API}/recurringruns") and r.method != "GET"
    ]
    assert order == [
        ("POST", f"{API}/recurringruns"),
        ("DELETE", f"{API}/recurringruns/{first['recurring_run_id']}"),
        ("POST", f"{API}/recurringruns"),
    ]
    assert "deleted and recreated" in out and "#7421" in out
    assert len(kfp_server.calls("POST", f"{API}/pipelines/upload_version")) == 1  # reused


def test_schedule_restores_the_old_run_when_recreation_fails(env, kfp_server, capsys, tmp_path):
    assert _schedule(capsys, kfp_server, tmp_path)[0] == 0
    kfp_server.fail_next[("POST", f"{API}/recurringruns")] = (500, "scheduler unavailable")
    code, _, err = _schedule(capsys, kfp_server, tmp_path, "0 0 7 * * *")
    assert code == 1
    assert "scheduler unavailable" in err and "restored it as" in err
    (current,) = kfp_server.recurring_runs_named(f"{RETRAINING_PIPELINE}-monthly")
    assert current["trigger"]["cron_schedule"]["cron"] == "0 0 6 1 * *"
    assert current["max_concurrency"] == "1" and current["no_catchup"] is True


def test_schedule_of_an_unknown_pipeline_is_clear(env, kfp_server, capsys, tmp_path):
    code, _, err = _schedule(capsys, kfp_server, tmp_path, "0 6 1 * *", "--pipeline", "nope")
    assert code == 2
    assert "pipeline nope is not defined" in err


# --------------------------------------------------------------------------- floor + image


def _upload_training(capsys, host: str, tmp_path, *extra: str) -> tuple[int, str, str]:
    """``churn submit`` of the training pipeline, upload only."""
    return _cli(
        capsys,
        "submit",
        "--host",
        host,
        "--pipeline",
        TRAINING_PIPELINE,
        "--upload-only",
        "--out-dir",
        str(tmp_path),
        *extra,
    )


def _uploaded_images(server) -> set[str]:
    (upload,) = server.calls("POST", f"{API}/pipelines/upload")
    spec = _docs(upload.files["uploadfile"])[0]
    return {e["container"]["image"] for e in spec["deploymentSpec"]["executors"].values()}


def test_placeholder_image_is_refused_before_the_server_is_contacted(
    env, kfp_server, capsys, tmp_path
):
    env.delenv("CHURN_IMAGE")
    code, out, err = _cli(capsys, "submit", "--host", kfp_server.url, "--out-dir", str(tmp_path))
    assert code == 2
    assert "placeholder image ghcr.io/churn-kfp/churn-kfp:" in err
    assert "make images" in err and "--image" in err
    assert kfp_server.requests == []
    assert not list(tmp_path.iterdir())  # not even compiled

    code, _, err = _cli(
        capsys,
        "schedule",
        "--cron",
        "0 6 1 * *",
        "--host",
        kfp_server.url,
        "--out-dir",
        str(tmp_path),
    )
    assert code == 2 and "placeholder image" in err
    assert kfp_server.requests == []


@pytest.mark.parametrize("command", [["submit"], ["schedule", "--cron", "0 6 1 * *"]])
def test_backend_older_than_the_floor_is_refused_and_the_floor_named(
    env, make_kfp_server, capsys, tmp_path, command
):
    server = make_kfp_server(tag_name="2.5.0")  # what Kubeflow 1.10 ships
    code, _, err = _cli(capsys, *command, "--host", server.url, "--out-dir", str(tmp_path))
    assert code == 1
    assert "KFP backend 2.5.0, older than 2.16" in err and "26.03" in err
    assert [r.path for r in server.requests] == [f"{API}/healthz"]


def test_backend_without_a_version_gets_a_warning_not_a_refusal(
    env, make_kfp_server, capsys, tmp_path
):
    server = make_kfp_server(tag_name="unknown")
    code, _, err = _upload_training(capsys, server.url, tmp_path)
    assert code == 0, err
    assert "does not report its KFP version" in err and "2.16 or newer" in err


@pytest.mark.parametrize(
    ("tag", "version", "allowed"),
    [
        ("2.16.0", (2, 16, 0), True),
        ("v2.17.1", (2, 17, 1), True),
        ("3.0", (3, 0), True),
        ("2.15.2", (2, 15, 2), False),
        ("2.5.0", (2, 5, 0), False),
        ("1.8.5", (1, 8, 5), False),
    ],
)
def test_backend_version_is_read_from_healthz_tag_name(tag, version, allowed):
    health = {"commit_sha": "abc", "tag_name": tag, "multi_user": False}
    assert kfp_client.backend_version(health) == version
    if allowed:
        assert kfp_client.require_backend_floor(health, "http://kfp") is None
    else:
        with pytest.raises(kfp_client.KfpBackendTooOldError, match="older than 2.16"):
            kfp_client.require_backend_floor(health, "http://kfp")


@pytest.mark.parametrize("health", [{}, {"tag_name": "unknown"}, {"tag_name": "dev"}])
def test_unreported_versions_are_none(health):
    assert kfp_client.backend_version(health) is None


def test_image_flag_is_what_runs_pinned_by_digest(env, kfp_server, capsys, tmp_path):
    pinned = "registry.example/ml/churn-kfp@sha256:" + "ab" * 32
    code, out, err = _upload_training(capsys, kfp_server.url, tmp_path, "--image", pinned)
    assert code == 0, err
    assert f"components run in image {pinned}" in out
    assert _uploaded_images(kfp_server) == {pinned}


def test_image_from_the_environment_is_what_runs(env, kfp_server, capsys, tmp_path):
    code, _, err = _upload_training(capsys, kfp_server.url, tmp_path)
    assert code == 0, err
    assert _uploaded_images(kfp_server) == {TEST_IMAGE}


@pytest.mark.parametrize("how", ["flag", "env"])
def test_the_bearer_token_given_is_sent_on_every_request(
    env, make_kfp_server, capsys, tmp_path, how
):
    server = make_kfp_server(multi_user=True, token="tok-for-pipelines.kubeflow.org")
    given = ["--token", server.token] if how == "flag" else []
    if how == "env":
        env.setenv("KFP_TOKEN", server.token)
    code, out, err = _cli(
        capsys,
        "submit",
        "--host",
        server.url,
        "--namespace",
        "team-churn",
        "--pipeline",
        TRAINING_PIPELINE,
        *given,
        "--out-dir",
        str(tmp_path),
    )
    assert code == 0, err
    assert server.token not in out + err  # never printed
    assert ("auth --token" if how == "flag" else "auth KFP_TOKEN") in out
    assert len(server.requests) > 3
    assert {r.headers["authorization"] for r in server.requests} == {f"Bearer {server.token}"}


def test_token_help_names_the_kfp_api_audience(env, make_kfp_server, capsys, tmp_path):
    server = make_kfp_server(multi_user=True, token="s3cret")
    code, _, err = _cli(capsys, "submit", "--host", server.url, "--out-dir", str(tmp_path))
    assert code == 2
    assert "--audience=pipelines.kubeflow.org" in err
