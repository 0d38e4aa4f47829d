"""Serving over the V2 protocol: MLServer + our MLflow runtime, on a free loopback port.

A small model of the registered model's shape (ColumnTransformer + XGBoost, logged with
skops, ``pyfunc_predict_fn="predict_proba"``, signature, input example, ``threshold`` tag,
``champion`` alias) is registered in a temporary SQLite MLflow registry; one server is
started for the module and always stopped. Served probabilities are compared with
``mlflow.pyfunc`` in this process.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import requests

from churn_kfp.cli import main as cli
from churn_kfp.core.config import Settings
from churn_kfp.registry.contract import EXAMPLE_PROBABILITIES_TAG
from churn_kfp.serving import client as serving_client
from churn_kfp.serving import server as serving

pytestmark = pytest.mark.serving

MODEL = "churn-classifier"
THRESHOLD = 0.35
NUMERIC = ["recency_days", "frequency_30d", "monetary_90d", "sentiment_mean", "age"]
CATEGORICAL = ["gender", "location", "segment"]
FEATURES = NUMERIC + CATEGORICAL
SKOPS_TRUSTED = [
    "numpy.dtype",
    "pandas._libs.missing.NAType",
    "xgboost.core.Booster",
    "xgboost.sklearn.XGBClassifier",
]


# --------------------------------------------------------------------------------------------
# Helpers: data, model, MLflow registry
# --------------------------------------------------------------------------------------------


def make_features(n: int, seed: int, missing: bool = True) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "customer_id": [f"c{seed}-{i}" for i in range(n)],
            "cutoff": "2025-05-01",
            "recency_days": rng.exponential(20, n),
            "frequency_30d": rng.poisson(2, n).astype(float),
            "monetary_90d": rng.gamma(2, 50, n),
            "sentiment_mean": rng.normal(0, 0.5, n),
            "age": rng.integers(18, 80, n).astype(float),
            "gender": rng.choice(["f", "m", "x"], n).astype(object),
            "location": rng.choice(["north", "south", "east"], n).astype(object),
            "segment": rng.choice(["bronze", "silver", "gold"], n).astype(object),
        }
    )
    if missing:
        frame.loc[rng.random(n) < 0.1, "monetary_90d"] = np.nan
        frame.loc[rng.random(n) < 0.1, "age"] = np.nan
        frame.loc[rng.random(n) < 0.1, "gender"] = None
    return frame


def build_pipeline():
    import xgboost
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    categorical = Pipeline(
        [
            (
                "impute",
                SimpleImputer(missing_values=pd.NA, strategy="constant", fill_value="unknown"),
            ),
            ("onehot", OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
        ]
    )
    preprocess = ColumnTransformer(
        [
            ("num", SimpleImputer(strategy="median", add_indicator=True), NUMERIC),
            ("cat", categorical, CATEGORICAL),
        ],
        sparse_threshold=0.0,
    )
    model = xgboost.XGBClassifier(n_estimators=40, max_depth=3, n_jobs=2, random_state=0)
    return Pipeline([("preprocess", preprocess), ("model", model)])


@contextlib.contextmanager
def mlflow_tracking(uri: str):
    """Points MLflow's fluent API (tracking and registry) at ``uri``.

    The autouse ``isolated_mlflow_uris`` fixture (tests/conftest.py) gives the previous
    URIs back when the module ends.
    """
    import mlflow

    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    yield


def log_skops_model(pipeline, train: pd.DataFrame, example_rows: int, **extra):
    """Logs a fitted pipeline in the active run as the register step does.

    skops with the trusted types, ``predict_proba`` as the pyfunc method, a signature and
    the first ``example_rows`` rows of ``train`` as input example; ``extra`` goes to
    ``log_model``.
    """
    import mlflow
    from mlflow.models import infer_signature

    return mlflow.sklearn.log_model(
        pipeline,
        name="model",
        signature=infer_signature(train[FEATURES], pipeline.predict_proba(train[FEATURES])),
        input_example=train[FEATURES].head(example_rows),
        serialization_format="skops",
        skops_trusted_types=SKOPS_TRUSTED,
        pyfunc_predict_fn="predict_proba",
        pip_requirements=["mlflow", "scikit-learn", "xgboost", "skops"],
        **extra,
    )


def register_model(home: Path) -> dict:
    """Trains, logs and registers the model as version 1 with alias champion."""
    import mlflow
    from mlflow import MlflowClient

    train = make_features(600, seed=1)
    rng = np.random.default_rng(2)
    y = (train["recency_days"] + rng.normal(0, 10, len(train)) > 25).astype(int)
    pipeline = build_pipeline().fit(train[FEATURES], y)
    tracking_uri = f"sqlite:///{home / 'mlflow.db'}"
    with mlflow_tracking(tracking_uri):
        experiment = mlflow.create_experiment("serving-test", (home / "mlartifacts").as_uri())
        with mlflow.start_run(experiment_id=experiment):
            info = log_skops_model(
                pipeline, train, example_rows=3, metadata={"non_nullable_columns": ["recency_days"]}
            )
        example_proba = pipeline.predict_proba(train[FEATURES].head(3))[:, 1]
        tags = {
            "threshold": repr(THRESHOLD),
            EXAMPLE_PROBABILITIES_TAG: json.dumps([float(p) for p in example_proba]),
        }
        version = mlflow.register_model(info.model_uri, MODEL, tags=tags)
        client = MlflowClient()
        client.set_registered_model_alias(MODEL, "champion", version.version)
    env = {"CHURN_HOME": str(home), "MLFLOW_TRACKING_URI": tracking_uri}
    return {"env": env, "settings": Settings.from_env(env), "model_uri": info.model_uri}


# --------------------------------------------------------------------------------------------
# Fixtures
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    return register_model(tmp_path_factory.mktemp("serving-home"))


@pytest.fixture(scope="module")
def served(registry):
    return serving.resolve_model(settings=registry["settings"])


@pytest.fixture(scope="module")
def pyfunc(served):
    from churn_kfp.registry.loading import load_pyfunc

    return load_pyfunc(served.model_dir, model_name=served.name, version=served.version)


@pytest.fixture(scope="module")
def server(served, tmp_path_factory):
    with serving.serve(served, workdir=tmp_path_factory.mktemp("mlserver")) as running:
        yield running
    assert running.process.poll() is not None, "the server must be stopped after the module"


@pytest.fixture(scope="module")
def rows():
    return make_features(300, seed=11)


def expected_proba(pyfunc, frame: pd.DataFrame) -> np.ndarray:
    return np.asarray(pyfunc.predict(frame[FEATURES]))[:, 1]


def post_infer(url: str, body) -> requests.Response:
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return requests.post(
        f"{url}/v2/models/{MODEL}/infer",
        data=data,
        headers={"Content-Type": "application/json"},
        timeout=30,
    )


# --------------------------------------------------------------------------------------------
# Resolving the model and writing MLServer's configuration (no server)
# --------------------------------------------------------------------------------------------


def test_resolve_champion_and_version(registry, served):
    assert served.version == "1"
    assert served.alias == "champion"
    assert served.threshold == THRESHOLD
    assert (served.model_dir / "MLmodel").is_file()
    by_version = serving.resolve_model("1", settings=registry["settings"])
    assert by_version.model_dir == served.model_dir and by_version.alias is None
    with pytest.raises(LookupError, match="version 7"):
        serving.resolve_model("7", settings=registry["settings"])


def test_remote_artifacts_are_downloaded_once(registry, tmp_path):
    with mlflow_tracking(registry["env"]["MLFLOW_TRACKING_URI"]):
        local = serving._local_model_dir(f"models:/{MODEL}/1", tmp_path / "cache")
        again = serving._local_model_dir(f"models:/{MODEL}/1", tmp_path / "cache")
    assert local == again == tmp_path / "cache" / "model"
    assert (local / "MLmodel").is_file() and (local / "model.skops").is_file()


def test_server_config(served, tmp_path):
    folder = serving.write_server_config(served, tmp_path, http_port=1234, grpc_port=1235)
    settings = json.loads((folder / "settings.json").read_text())
    assert settings["host"] == "127.0.0.1"
    assert settings["debug"] is False and settings["parallel_workers"] == 0
    assert settings["metrics_endpoint"] is None
    model_settings = json.loads((folder / MODEL / "model-settings.json").read_text())
    assert model_settings["implementation"] == serving.VALIDATING_RUNTIME
    assert model_settings["parameters"]["uri"] == str(served.model_dir)
    assert model_settings["parameters"]["version"] == "1"
    assert model_settings["parameters"]["extra"] == {"threshold": THRESHOLD}


def test_one_set_of_mlserver_settings(served, tmp_path):
    """``churn serve``, the launcher and the KServe ServingRuntime use the same settings."""
    import mlserver.settings
    import yaml

    from churn_kfp.serving import launch

    assert launch.SERVER_SETTINGS, "no settings to check"
    written = json.loads(
        (
            serving.write_server_config(served, tmp_path, http_port=1, grpc_port=2)
            / "settings.json"
        ).read_text()
    )
    assert launch.SERVER_SETTINGS.items() <= written.items()
    manifest = Path(__file__).resolve().parents[2] / "manifests/base/serving-runtime.yaml"
    (container,) = yaml.safe_load(manifest.read_text())["spec"]["containers"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert launch.server_env().items() <= env.items()
    # MLServer reads these variables as those settings (its defaults differ)
    assert mlserver.settings.Settings(_env_file=None).debug is True
    environ = dict(launch.server_env())
    with pytest.MonkeyPatch.context() as patch:
        for key, value in environ.items():
            patch.setenv(key, value)
        from_env = mlserver.settings.Settings(_env_file=None)
    assert {k: getattr(from_env, k) for k in launch.SERVER_SETTINGS} == launch.SERVER_SETTINGS
    kept = {"MLSERVER_DEBUG": "true"}
    launch.apply_server_settings(kept)
    assert kept["MLSERVER_DEBUG"] == "true" and kept.keys() == environ.keys()


def test_frame_to_v2_request_types_and_missing_values():
    frame = pd.DataFrame(
        {"x": [1.5, np.nan], "n": [1, 2], "s": ["a", None], "b": [True, False]},
    )
    body = frame_body = serving_client.frame_to_v2_request(frame)
    assert body["parameters"] == {"content_type": "pd"}
    inputs = {i["name"]: i for i in frame_body["inputs"]}
    assert inputs["x"] == {"name": "x", "shape": [2, 1], "datatype": "FP64", "data": [1.5, None]}
    assert inputs["n"]["datatype"] == "INT64" and inputs["n"]["data"] == [1, 2]
    assert inputs["s"]["datatype"] == "BYTES" and inputs["s"]["data"] == ["a", None]
    assert inputs["b"]["datatype"] == "BOOL"
    forced = serving_client.frame_to_v2_request(frame, columns=["n"], datatypes={"n": "FP64"})
    assert forced["inputs"] == [
        {"name": "n", "shape": [2, 1], "datatype": "FP64", "data": [1.0, 2.0]}
    ]
    json.dumps(body, allow_nan=False)  # valid JSON: no NaN tokens


def test_parse_v2_response_of_both_runtimes():
    ours = {
        "outputs": [
            {"name": "churn_probability", "shape": [2], "datatype": "FP64", "data": [0.2, 0.7]},
            {
                "name": "churn",
                "shape": [2],
                "datatype": "BOOL",
                "data": [False, True],
                "parameters": {"threshold": 0.5},
            },
        ]
    }
    parsed = serving_client.parse_v2_response(ours)
    assert parsed.probability.tolist() == [0.2, 0.7]
    assert parsed.decision.tolist() == [False, True] and parsed.threshold == 0.5
    stock = {"outputs": [{"name": "output-1", "shape": [2, 2], "data": [0.8, 0.2, 0.3, 0.7]}]}
    parsed = serving_client.parse_v2_response(stock)
    assert parsed.probability.tolist() == [0.2, 0.7] and parsed.decision is None


def test_decode_inputs_in_process():
    from mlserver.types import RequestInput

    from churn_kfp.serving.runtime import ColumnSpec, InvalidInputError, decode_inputs

    specs = [ColumnSpec("x", "double"), ColumnSpec("s", "string"), ColumnSpec("k", "long")]

    def inp(name, datatype, data, shape=None):
        return RequestInput(name=name, datatype=datatype, shape=shape or [len(data), 1], data=data)

    frame = decode_inputs(
        [
            inp("x", "INT64", [[1], [None]]),
            inp("s", "BYTES", ["a", None]),
            inp("k", "INT64", [3, 4]),
        ],
        specs,
    )
    assert frame["x"].dtype == np.float64 and np.isnan(frame["x"][1])
    assert frame["s"].tolist() == ["a", None] and frame["k"].dtype == np.int64
    cases = {
        "column 'x': expected numbers": [inp("x", "FP64", [True, 1.0])],
        "column 'x': infinite values": [inp("x", "FP64", [float("inf"), 1.0])],
        "column 'x': shape [3, 1] but 2 value(s)": [inp("x", "FP64", [1.0, 2.0], [3, 1])],
        "column 'k': null/NaN values are not allowed": [inp("k", "INT64", [None, 1])],
        "column 'k': expected datatype INT64": [inp("k", "FP64", [1.5, 2.0])],
        "column 'x': datatype INT64 declared, but not whole numbers; send FP64 (row 1: 2.5)": [
            inp("x", "INT64", [1.0, 2.5])
        ],
        "column 's': expected strings": [inp("s", "BYTES", [1, "b"])],
        "duplicate input(s) ['s']": [inp("s", "BYTES", ["a", "b"])],
    }
    for expected, override in cases.items():
        base = {
            "x": inp("x", "FP64", [1.0, 2.0]),
            "s": inp("s", "BYTES", ["a", "b"]),
            "k": inp("k", "INT64", [1, 2]),
        }
        inputs = list(base.values())
        for item in override:
            if expected.startswith("duplicate"):
                inputs.append(item)
            else:
                inputs[[i.name for i in inputs].index(item.name)] = item
        with pytest.raises(InvalidInputError, match=re.escape(expected)) as info:
            decode_inputs(inputs, specs, "m")
        assert info.value.status_code == 422


# --------------------------------------------------------------------------------------------
# The running server
# --------------------------------------------------------------------------------------------


def test_health_and_metadata(server, served):
    assert requests.get(f"{server.url}/v2/health/live", timeout=5).status_code == 200
    assert requests.get(f"{server.url}/v2/health/ready", timeout=5).status_code == 200
    assert requests.get(f"{server.url}/v2/models/{MODEL}/ready", timeout=5).status_code == 200
    meta = requests.get(f"{server.url}/v2/models/{MODEL}", timeout=5).json()
    assert meta["name"] == MODEL and meta["versions"] == ["1"]
    assert [(i["name"], i["datatype"]) for i in meta["inputs"]] == [
        (name, "FP64") for name in NUMERIC
    ] + [(name, "BYTES") for name in CATEGORICAL]
    nullable = {i["name"]: i["parameters"]["nullable"] for i in meta["inputs"]}
    assert nullable["recency_days"] is False and nullable["age"] is True
    assert [(o["name"], o["datatype"]) for o in meta["outputs"]] == [
        ("churn_probability", "FP64"),
        ("churn", "BOOL"),
    ]
    assert meta["parameters"]["threshold"] == THRESHOLD


def test_server_listens_on_loopback_only(server):
    import psutil

    listening = [
        conn.laddr
        for conn in psutil.Process(server.process.pid).net_connections(kind="inet")
        if conn.status == psutil.CONN_LISTEN
    ]
    assert listening, "no listening sockets found"
    for addr in listening:  # REST on 127.0.0.1; gRPC shows up as ::ffff:127.0.0.1
        ip = ipaddress.ip_address(addr.ip)
        assert (getattr(ip, "ipv4_mapped", None) or ip).is_loopback, listening
    assert int(server.url.rsplit(":", 1)[1]) in {addr.port for addr in listening}


def test_plain_http_matches_pyfunc(server, pyfunc, rows):
    assert rows[FEATURES].isna().any().any(), "the rows should exercise missing values"
    response = post_infer(server.url, serving_client.frame_to_v2_request(rows[FEATURES]))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model_name"] == MODEL and body["model_version"] == "1"
    outputs = {o["name"]: o for o in body["outputs"]}
    probability = np.asarray(outputs["churn_probability"]["data"])
    assert outputs["churn_probability"]["shape"] == [len(rows)]
    np.testing.assert_allclose(probability, expected_proba(pyfunc, rows), rtol=0, atol=1e-6)
    assert outputs["churn"]["parameters"]["threshold"] == THRESHOLD
    assert outputs["churn"]["data"] == (probability >= THRESHOLD).tolist()
    # The client helper batches and gives the same answer.
    batched = serving_client.predict_http(server.url, rows[FEATURES], batch_size=64)
    np.testing.assert_array_equal(batched, probability)


def test_concurrent_clients_get_their_own_answers(server, pyfunc):
    from concurrent.futures import ThreadPoolExecutor

    frames = [make_features(20 + i, seed=100 + i) for i in range(8)]

    def score(frame):
        return serving_client.predict_http(server.url, frame[FEATURES])

    for _ in range(3):
        with ThreadPoolExecutor(max_workers=8) as pool:
            answers = list(pool.map(score, frames))
        for frame, answer in zip(frames, answers, strict=True):
            np.testing.assert_allclose(answer, expected_proba(pyfunc, frame), rtol=0, atol=1e-6)


def test_tritonclient_matches_pyfunc(server, pyfunc):
    import tritonclient.http as httpclient
    from tritonclient.utils import InferenceServerException

    # tritonclient's JSON encoding cannot send nulls (None becomes "None", NaN is not JSON):
    # complete rows only; missing values are covered by the plain HTTP test.
    frame = make_features(50, seed=21, missing=False)
    client = httpclient.InferenceServerClient(url=server.url.removeprefix("http://"))
    try:
        assert client.is_server_ready() and client.is_model_ready(MODEL)
        metadata = client.get_model_metadata(MODEL)
        assert [i["name"] for i in metadata["inputs"]] == FEATURES

        def inputs_for(columns):
            inputs = []
            for name in columns:
                numeric = name in NUMERIC
                values = frame[name].to_numpy(dtype=np.float64 if numeric else object)
                item = httpclient.InferInput(name, [len(frame), 1], "FP64" if numeric else "BYTES")
                item.set_data_from_numpy(values.reshape(-1, 1), binary_data=False)
                inputs.append(item)
            return inputs

        outputs = [
            httpclient.InferRequestedOutput("churn_probability", binary_data=False),
            httpclient.InferRequestedOutput("churn", binary_data=False),
        ]
        result = client.infer(MODEL, inputs_for(FEATURES), outputs=outputs)
        probability = result.as_numpy("churn_probability")
        np.testing.assert_allclose(probability, expected_proba(pyfunc, frame), rtol=0, atol=1e-6)
        np.testing.assert_array_equal(result.as_numpy("churn"), probability >= THRESHOLD)

        with pytest.raises(InferenceServerException) as info:
            client.infer(MODEL, inputs_for([c for c in FEATURES if c != "segment"]))
        assert info.value.status() == "422" and "segment" in info.value.message()
    finally:
        client.close()


def _body(frame: pd.DataFrame) -> dict:
    return serving_client.frame_to_v2_request(frame[FEATURES])


def _with_input(frame: pd.DataFrame, name: str, **changes) -> dict:
    body = _body(frame)
    for item in body["inputs"]:
        if item["name"] == name:
            item.update(changes)
    return body


def _bad_requests(frame: pd.DataFrame) -> dict[str, tuple[object, list[str]]]:
    two = frame.head(2)
    missing = _body(two)
    missing["inputs"] = [i for i in missing["inputs"] if i["name"] != "age"]
    extra = _body(two)
    extra["inputs"].append(
        {"name": "colour", "shape": [2, 1], "datatype": "BYTES", "data": ["a", "b"]}
    )
    return {
        "missing column": (missing, ["missing column(s) ['age']"]),
        "extra column": (extra, ["unexpected column(s) ['colour']"]),
        "string datatype for a number": (
            _with_input(two, "age", datatype="BYTES", data=["40", "50"]),
            ["column 'age'", "expected datatype FP64", "got BYTES"],
        ),
        "number datatype for a string": (
            _with_input(two, "gender", datatype="FP64", data=[1.0, 2.0]),
            ["column 'gender'", "expected datatype BYTES"],
        ),
        "strings in a number column": (
            _with_input(two, "monetary_90d", data=["ten", 3.0]),
            ["column 'monetary_90d'", "expected numbers", "'ten'"],
        ),
        "empty batch": (_body(frame.head(0)), ["empty batch"]),
        "null where not allowed": (
            _with_input(two, "recency_days", data=[None, 3.0]),
            ["column 'recency_days'", "null/NaN values are not allowed", "[0]"],
        ),
        "rows of unequal length": (
            _with_input(two, "segment", shape=[1, 1], data=["gold"]),
            ["different numbers of rows", "'segment': 1"],
        ),
        "shape disagrees with data": (
            _with_input(two, "segment", shape=[3, 1]),
            ["column 'segment'", "shape [3, 1] but 2 value(s)"],
        ),
    }


@pytest.mark.parametrize("case", list(_bad_requests(make_features(3, seed=0))))
def test_bad_input_gets_422_naming_the_field(server, pyfunc, rows, case):
    body, fragments = _bad_requests(rows)[case]
    response = post_infer(server.url, body)
    assert response.status_code == 422, response.text
    message = response.json()["error"]
    for fragment in fragments:
        assert fragment in message, message
    # ...and the server keeps serving.
    good = post_infer(server.url, _body(rows.head(5)))
    assert good.status_code == 200, good.text
    served = np.asarray(good.json()["outputs"][0]["data"])
    np.testing.assert_allclose(served, expected_proba(pyfunc, rows.head(5)), atol=1e-6)


def test_non_json_numbers_are_rejected(server, rows):
    text = json.dumps(_body(rows.head(2)))
    text = text.replace('"data": [', '"data": [NaN, ', 1)  # NaN is not JSON
    response = post_infer(server.url, text)
    assert 400 <= response.status_code < 500
    assert post_infer(server.url, _body(rows.head(2))).status_code == 200


def test_predict_cli_end_to_end(server, pyfunc, rows, tmp_path, capsys):
    features = tmp_path / "features.csv"
    table = rows.assign(churn=0)  # a label column in the file is not sent
    table.to_csv(features, index=False)
    out = tmp_path / "predictions.csv"
    code = cli.main(
        ["predict", str(features), "--url", server.url, "--out", str(out), "--batch-size", "64"]
    )
    assert code == 0
    result = pd.read_csv(out)
    assert list(result.columns) == ["customer_id", "cutoff", "churn_probability", "churn"]
    assert result["customer_id"].tolist() == rows["customer_id"].tolist()
    expected = expected_proba(pyfunc, rows)
    np.testing.assert_allclose(result["churn_probability"], expected, rtol=0, atol=1e-6)
    assert (
        result["churn"].tolist() == (result["churn_probability"] >= THRESHOLD).astype(int).tolist()
    )
    assert f"wrote {len(rows)} predictions" in capsys.readouterr().out

    parquet = tmp_path / "features.parquet"
    rows.to_parquet(parquet)
    code = cli.main(
        ["predict", str(parquet), "--url", server.url, "--out", str(tmp_path / "p.parquet"), "-q"]
    )
    assert code == 0
    assert len(pd.read_parquet(tmp_path / "p.parquet")) == len(rows)


def test_predict_cli_errors(server, rows, tmp_path, capsys):
    features = tmp_path / "features.csv"
    rows.drop(columns=["age"]).to_csv(features, index=False)
    out = str(tmp_path / "x.csv")
    assert cli.main(["predict", str(features), "--url", server.url, "--out", out]) == 1
    assert "['age']" in capsys.readouterr().err
    rows.to_csv(features, index=False)
    dead = f"http://127.0.0.1:{serving.free_port()}"
    assert cli.main(["predict", str(features), "--url", dead, "--out", out, "-q"]) == 1
    err = capsys.readouterr().err
    assert "cannot reach the model server" in err and "churn serve" in err
    assert not (tmp_path / "x.csv").exists()


def _start_serve_cli(registry, log: Path, port: int) -> subprocess.Popen:
    """Runs `churn serve --port PORT` for version 1 until it prints that it is ready."""
    env = {**os.environ, **registry["env"], "MODEL_VERSION": "1", "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "churn_kfp.cli.main", "serve", "--port", str(port)]
    with open(log, "w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + 150
        while "press Ctrl-C" not in log.read_text():
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.5)
    except BaseException:
        _stop_cli(process)
        raise
    return process


def test_serve_cli_prints_a_working_curl_and_stops_on_ctrl_c(registry, tmp_path):
    port = serving.free_port()
    log = tmp_path / "serve.out"
    process = _start_serve_cli(registry, log, port)
    try:
        text = log.read_text()
        assert f"http://127.0.0.1:{port}" in text and "version 1" in text
        assert "smoke test: passed" in text
        body = re.search(r"-d '(.*)'", text).group(1)
        response = post_infer(f"http://127.0.0.1:{port}", body)
        assert response.status_code == 200
        assert response.json()["outputs"][0]["name"] == "churn_probability"
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=60) == 0, log.read_text()
        assert "stopped" in log.read_text()
        with pytest.raises(requests.ConnectionError):  # the MLServer child is gone
            requests.get(f"http://127.0.0.1:{port}/v2/health/live", timeout=5)
        assert not serving.port_in_use(port)
    finally:
        _stop_cli(process)


def test_serve_cli_stops_when_the_server_answers_otherwise_than_registered(registry, tmp_path):
    """The smoke test compares the served P(churn) of the input example with the recorded one."""
    from mlflow import MlflowClient

    uri = registry["env"]["MLFLOW_TRACKING_URI"]
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    recorded = client.get_model_version(MODEL, "1").tags[EXAMPLE_PROBABILITIES_TAG]
    wrong = json.dumps([min(1.0, p + 0.01) for p in json.loads(recorded)])
    client.set_model_version_tag(MODEL, "1", EXAMPLE_PROBABILITIES_TAG, wrong)
    port = serving.free_port()
    env = {**os.environ, **registry["env"], "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "churn_kfp.cli.main", "serve", "--version", "1"]
    try:
        done = subprocess.run(
            [*command, "--port", str(port)], env=env, capture_output=True, text=True, timeout=240
        )
    finally:
        client.set_model_version_tag(MODEL, "1", EXAMPLE_PROBABILITIES_TAG, recorded)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "smoke test failed" in done.stderr and "largest difference" in done.stderr
    assert not serving.port_in_use(port)  # the server was stopped


def _stop_cli(process: subprocess.Popen) -> None:
    """Stops `churn serve` and, should it fail to, its MLServer child (its own session)."""
    import psutil

    if process.poll() is not None:
        return
    children = psutil.Process(process.pid).children(recursive=True)
    process.terminate()  # the command stops its child on SIGTERM too
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    for child in children:
        with contextlib.suppress(psutil.NoSuchProcess):
            child.kill()


def test_kserve_style_environment_configuration(served, pyfunc, rows, tmp_path):
    """KServe's kserve-mlserver runtime configures MLServer through environment variables only.

    It sets MLSERVER_MODEL_IMPLEMENTATION from the InferenceService label ``modelClass``, the
    model name to the InferenceService name and the URI to the downloaded ``storageUri``.
    """
    http_port, grpc_port = serving.free_port(), serving.free_port()
    env = {
        **os.environ,
        "MLSERVER_MODEL_IMPLEMENTATION": serving.VALIDATING_RUNTIME,
        "MLSERVER_MODEL_NAME": "churn-isvc",
        "MLSERVER_MODEL_URI": str(served.model_dir),
        "MLSERVER_MODEL_EXTRA": json.dumps({"threshold": 0.3}),
        "MLSERVER_HOST": "127.0.0.1",
        "MLSERVER_HTTP_PORT": str(http_port),
        "MLSERVER_GRPC_PORT": str(grpc_port),
        "MLSERVER_METRICS_ENDPOINT": "",
        "MLSERVER_PARALLEL_WORKERS": "0",
        "MLSERVER_DEBUG": "false",
    }
    url = f"http://127.0.0.1:{http_port}"
    with open(tmp_path / "mlserver.log", "w") as log:
        process = subprocess.Popen(
            serving.mlserver_command(tmp_path),
            cwd=tmp_path,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        serving.wait_until_ready(url, "churn-isvc", timeout=150, process=process)
        meta = requests.get(f"{url}/v2/models/churn-isvc", timeout=5).json()
        assert meta["parameters"]["threshold"] == 0.3
        answer = serving_client.predict_frame(url, rows[FEATURES], model_name="churn-isvc")
        np.testing.assert_allclose(answer.probability, expected_proba(pyfunc, rows), atol=1e-6)
        assert answer.threshold == 0.3
        np.testing.assert_array_equal(answer.decision, answer.probability >= 0.3)
        bad = requests.post(f"{url}/v2/models/churn-isvc/infer", json={"inputs": []}, timeout=10)
        assert bad.status_code == 422 and "missing column(s)" in bad.json()["error"]
    finally:
        serving.stop_process(process)


# --------------------------------------------------------------------------------------------
# Hardening (issue 14): no pickle, request limits, the model cache, no orphaned server
# --------------------------------------------------------------------------------------------


def test_server_runs_without_the_pickle_flag(server):
    environ = Path(f"/proc/{server.process.pid}/environ").read_bytes().split(b"\0")
    assert not [v for v in environ if v.startswith(b"MLFLOW_ALLOW_PICKLE_DESERIALIZATION=")]


def test_request_limits_from_the_environment():
    from churn_kfp.serving.limits import DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_ROWS, RequestLimits

    assert RequestLimits.from_env({}) == RequestLimits(DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_ROWS)
    limits = RequestLimits.from_env(
        {"CHURN_SERVE_MAX_BODY_BYTES": "1_000", "CHURN_SERVE_MAX_ROWS": " 5 "}
    )
    assert limits == RequestLimits(1000, 5)
    for bad in ("0", "-3", "1e6", "lots"):
        with pytest.raises(ValueError, match=f"CHURN_SERVE_MAX_ROWS .*got '{bad}'"):
            RequestLimits.from_env({"CHURN_SERVE_MAX_ROWS": bad})


def _assert_still_serving(server, pyfunc, rows) -> None:
    assert server.process.poll() is None
    good = post_infer(server.url, _body(rows.head(5)))
    assert good.status_code == 200, good.text
    served = np.asarray(good.json()["outputs"][0]["data"])
    np.testing.assert_allclose(served, expected_proba(pyfunc, rows.head(5)), atol=1e-6)


def test_oversized_bodies_get_413_and_the_server_keeps_serving(server, pyfunc, rows):
    import gzip

    from churn_kfp.serving.limits import DEFAULT_MAX_BODY_BYTES

    url = f"{server.url}/v2/models/{MODEL}/infer"
    headers = {"Content-Type": "application/json"}
    padded = b'{"inputs": []' + b" " * DEFAULT_MAX_BODY_BYTES + b"}"
    declared = requests.post(url, data=padded, headers=headers, timeout=60)
    assert declared.status_code == 413, declared.text
    assert "CHURN_SERVE_MAX_BODY_BYTES" in declared.json()["error"]
    _assert_still_serving(server, pyfunc, rows)

    def chunks():  # no Content-Length: chunked transfer
        for start in range(0, len(padded), 1 << 20):
            yield padded[start : start + (1 << 20)]

    chunked = requests.post(url, data=chunks(), headers=headers, timeout=60)
    assert chunked.status_code == 413, chunked.text
    _assert_still_serving(server, pyfunc, rows)

    bomb = gzip.compress(padded)
    assert len(bomb) < 100_000  # small on the wire, over the limit once decompressed
    zipped = {**headers, "Content-Encoding": "gzip"}
    inflated = requests.post(url, data=bomb, headers=zipped, timeout=60)
    assert inflated.status_code == 413 and "decompressed" in inflated.json()["error"]
    _assert_still_serving(server, pyfunc, rows)

    small = gzip.compress(json.dumps(_body(rows.head(3))).encode())
    answer = requests.post(url, data=small, headers=zipped, timeout=60)
    assert answer.status_code == 200, answer.text  # gzip within the limit still works
    np.testing.assert_allclose(
        answer.json()["outputs"][0]["data"], expected_proba(pyfunc, rows.head(3)), atol=1e-6
    )


def test_too_many_rows_get_422(server, pyfunc, rows):
    from churn_kfp.serving.limits import DEFAULT_MAX_ROWS

    at_limit = make_features(DEFAULT_MAX_ROWS, seed=5)
    assert post_infer(server.url, _body(at_limit)).status_code == 200
    over = make_features(DEFAULT_MAX_ROWS + 1, seed=5)
    response = post_infer(server.url, _body(over))
    assert response.status_code == 422, response.text
    message = response.json()["error"]
    assert f"{DEFAULT_MAX_ROWS + 1} rows" in message and "CHURN_SERVE_MAX_ROWS" in message
    _assert_still_serving(server, pyfunc, rows)


def test_small_limits_from_the_servers_environment(served, tmp_path):
    """The limits are settings: a server started with small ones enforces those."""
    env = {"CHURN_SERVE_MAX_BODY_BYTES": "4000", "CHURN_SERVE_MAX_ROWS": "3"}
    with serving.serve(served, workdir=tmp_path, env=env) as small:
        four = make_features(4, seed=3, missing=False)
        rows_error = post_infer(small.url, _body(four))
        assert rows_error.status_code == 422 and "limit of 3 rows" in rows_error.json()["error"]
        body = json.dumps(_body(make_features(40, seed=3, missing=False)))
        assert len(body) > 4000
        assert post_infer(small.url, body).status_code == 413
        assert post_infer(small.url, _body(four.head(3))).status_code == 200


def register_second_model(registry: dict, name: str) -> str:
    """Registers another model (other data, so other probabilities) at version 1."""
    import mlflow
    from mlflow.models import infer_signature

    train = make_features(300, seed=21, missing=False)
    y = (train["monetary_90d"] > train["monetary_90d"].median()).astype(int)
    pipeline = build_pipeline().fit(train[FEATURES], y)
    with mlflow_tracking(registry["env"]["MLFLOW_TRACKING_URI"]):
        mlflow.set_experiment("serving-test")
        with mlflow.start_run():
            info = mlflow.sklearn.log_model(
                pipeline,
                name="model",
                signature=infer_signature(train[FEATURES], pipeline.predict_proba(train[FEATURES])),
                serialization_format="skops",
                skops_trusted_types=SKOPS_TRUSTED,
                pyfunc_predict_fn="predict_proba",
                pip_requirements=["scikit-learn", "xgboost", "skops"],
            )
        assert mlflow.register_model(info.model_uri, name).version in (1, "1")
    return info.model_id


def test_model_cache_is_keyed_by_name_version_and_model_id(registry, served, tmp_path):
    import yaml

    settings = registry["settings"]
    other_id = register_second_model(registry, "model-b")
    model_b = serving.resolve_model("1", settings=settings, model_name="model-b")
    assert (model_b.name, model_b.version, model_b.model_id) == ("model-b", "1", other_id)
    assert served.model_id and served.model_id != other_id
    assert model_b.model_dir != served.model_dir
    assert serving.serving_dir(settings, "model-b", "1") != serving.serving_dir(
        settings, MODEL, "1"
    )

    def model_id_in(folder: Path) -> str:
        return yaml.safe_load((folder / "MLmodel").read_text())["model_id"]

    cache_b = serving.serving_dir(settings, "model-b", "1") / other_id
    with mlflow_tracking(registry["env"]["MLFLOW_TRACKING_URI"]):
        downloaded = serving._local_model_dir("models:/model-b/1", cache_b, other_id)
        assert model_id_in(downloaded) == other_id
        # A cache holding another model's files (the old version-only key) is not served.
        shutil.rmtree(downloaded)
        shutil.copytree(served.model_dir, downloaded)
        again = serving._local_model_dir("models:/model-b/1", cache_b, other_id)
    assert again == downloaded and model_id_in(again) == other_id
    with pytest.raises(LookupError, match=f"holds model id {served.model_id}"):
        serving._local_model_dir(str(served.model_dir), tmp_path / "unused", other_id)


@pytest.fixture(scope="module")
def hostile(registry, tmp_path_factory):
    """A cloudpickle version whose unpickling writes a marker, as `churn-hostile`@champion."""
    from support.hostile_model import log_hostile_version

    marker = tmp_path_factory.mktemp("hostile") / "marker"
    with mlflow_tracking(registry["env"]["MLFLOW_TRACKING_URI"]):
        import mlflow

        mlflow.set_experiment("serving-test")
        version = log_hostile_version("churn-hostile", marker, champion=True)
    return {"name": "churn-hostile", "version": version, "marker": marker}


def test_churn_serve_refuses_a_pickled_version(registry, hostile, monkeypatch, capsys):
    for key, value in registry["env"].items():
        monkeypatch.setenv(key, value)
    port = str(serving.free_port())
    for extra in (["--version", hostile["version"]], []):  # by version, then as @champion
        code = cli.main(["serve", "--model", hostile["name"], "--port", port, *extra])
        error = capsys.readouterr().err
        assert code == 1
        assert f"refusing to load model 'churn-hostile' version {hostile['version']}" in error
        assert "serialization_format 'cloudpickle'" in error
    assert not hostile["marker"].exists()


def test_the_runtime_itself_refuses_a_pickled_model(registry, hostile, tmp_path):
    """Defence in depth (KServe starts the runtime without `churn serve`'s check)."""
    import mlflow.artifacts

    with mlflow_tracking(registry["env"]["MLFLOW_TRACKING_URI"]):
        local = mlflow.artifacts.download_artifacts(
            f"models:/{hostile['name']}/{hostile['version']}", dst_path=str(tmp_path / "files")
        )
    model = serving.ServedModel(name=hostile["name"], version="1", model_dir=Path(local))
    with pytest.raises(serving.ServerStartError, match="serialization_format 'cloudpickle'"):
        serving.start_server(model, workdir=tmp_path, timeout=120)
    assert not hostile["marker"].exists()


def _gone(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_kill_9_of_churn_serve_takes_mlserver_down(registry, tmp_path):
    port = serving.free_port()
    records = registry["settings"].home / "serving" / "servers"
    process = _start_serve_cli(registry, tmp_path / "serve.out", port)
    try:
        (running,) = serving.recorded_servers(records)
        assert running.port == port and running.parent_pid == process.pid and running.parent_alive
        process.kill()  # SIGKILL: `churn serve` cannot stop its child itself
        process.wait(timeout=10)
        deadline = time.monotonic() + 20
        while not _gone(running.pid):
            assert time.monotonic() < deadline, f"MLServer pid {running.pid} outlived its parent"
            time.sleep(0.2)
        with pytest.raises(requests.ConnectionError):  # nothing answers on the port any more
            requests.get(f"http://127.0.0.1:{port}/v2/health/live", timeout=5)
        deadline = time.monotonic() + 10
        while serving.port_in_use(port):  # the next `churn serve` can bind it
            assert time.monotonic() < deadline, f"port {port} still taken"
            time.sleep(0.5)
        assert serving.recorded_servers(records) == []  # the dead server's record is dropped
        assert not list(records.glob("*.json"))
    finally:
        _stop_cli(process)


def test_churn_serve_names_a_stale_server_holding_its_port(registry, tmp_path, monkeypatch, capsys):
    """A server recorded by a `churn serve` that is gone (as if it outlived a kill -9)."""
    for key, value in registry["env"].items():
        monkeypatch.setenv(key, value)
    port = serving.free_port()
    config_dir = tmp_path / f"mlserver-{port}"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import socket, sys, time; s = socket.socket(); "
            "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); "
            f"s.bind(('127.0.0.1', {port})); s.listen(); print('ok', flush=True); time.sleep(120)",
            str(config_dir),
        ],
        stdout=subprocess.PIPE,
    )
    gone_parent = subprocess.Popen([sys.executable, "-c", "pass"])
    gone_parent.wait()
    records = registry["settings"].home / "serving" / "servers"
    records.mkdir(parents=True, exist_ok=True)
    record = records / f"127.0.0.1-{port}.json"
    try:
        assert holder.stdout.readline().strip() == b"ok"
        record.write_text(
            json.dumps(
                {
                    "pid": holder.pid,
                    "host": "127.0.0.1",
                    "port": port,
                    "model": MODEL,
                    "version": "1",
                    "parent_pid": gone_parent.pid,
                    "config_dir": str(config_dir),
                    "started_at": "2026-01-01T00:00:00+00:00",
                }
            )
        )
        assert cli.main(["serve", "--version", "1", "--port", str(port)]) == 1
        error = capsys.readouterr().err
        assert f"port {port} is taken: MLServer pid {holder.pid} serving {MODEL} version 1" in error
        assert f"left behind by a churn serve (pid {gone_parent.pid}) that is gone" in error
        assert f"kill {holder.pid}" in error
    finally:
        holder.kill()
        holder.wait()
    assert serving.recorded_servers(records) == [] and not record.exists()
