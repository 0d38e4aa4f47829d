"""Serving speed: our MLServer setup vs ``mlflow models serve`` vs the in-process pyfunc.

One run measures, on the same MLflow model and the same rows:

- latency p50/p95/p99 of sequential 1-row and 1,000-row requests (keep-alive connection,
  request bodies encoded beforehand so the client costs little);
- requests/s of 1-row requests with 1 and 8 concurrent clients (threads, one connection
  each) over a fixed time window;

for (a) MLServer + :class:`churn_kfp.serving.runtime.ValidatingMLflowRuntime` as ``churn
serve`` starts it, (b) ``mlflow models serve -m <model> --env-manager local`` (its
``/invocations`` endpoint with ``dataframe_split``), optionally (c) MLServer with the stock
``mlserver_mlflow.MLflowRuntime`` (its loading replaced by our safe loader:
``SafeMLflowRuntime``), and (d) the pyfunc called in this process (the floor). It
also checks that every server returns the in-process probabilities (max abs difference),
and compares (a) with (b): 1-row p50 and requests/s at 8 clients as ratios, against the
targets :data:`TARGETS_VS_MLFLOW`.

``mlflow models serve`` loads the model with MLflow's own loader, in its own process, with
the environment as it is: this script never sets ``MLFLOW_ALLOW_PICKLE_DESERIALIZATION``
(MLflow 3.17 allows its loader by default; if you set the variable to ``false``, that setup
is reported as not started). The model is first loaded here through the project's safe
loader, so only a skops model of trusted types gets that far.

The model is the local champion (``$CHURN_HOME``, ``MLFLOW_TRACKING_URI``) when there is one,
else a synthetic one built like the project's (:func:`churn_kfp.learn.training.
build_pipeline`: ColumnTransformer + XGBoost, 200 trees) saved to a temporary folder;
``--model-dir`` serves a given MLflow model folder. Rows are sampled (with replacement) from
the model's input example, or generated for the synthetic model.

Usage: ``python bench/serving_bench.py [--out bench/results/serving.json] [--quick]``.
``run()`` returns the results as a dict. The servers bind 127.0.0.1 and are always stopped.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "serving.json"
TARGETS_MS = {"p50_1_row": 10.0, "p50_1000_rows": 60.0}
OURS = "mlserver (churn serve)"
MLFLOW_SERVE = "mlflow models serve"
TARGETS_VS_MLFLOW = {
    "latency_1_row_p50_ratio": ("<=", 0.5),
    "rps_1_row_8_clients_ratio": (">=", 2.0),
    "max_abs_diff": ("<=", 1e-6),
}
"""Issue 16: 1-row p50 at most half of ``mlflow models serve``'s, twice its requests/s at 8
clients, the same probabilities (1e-6); all measured in one run."""


# ---------------------------------------------------------------------------------------------
# The model and the rows
# ---------------------------------------------------------------------------------------------


def synthetic_features(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "recency_days": rng.exponential(20, n),
            "frequency_30d": rng.poisson(2, n).astype(float),
            "frequency_90d": rng.poisson(6, n).astype(float),
            "monetary_30d": rng.gamma(2, 20, n),
            "monetary_90d": rng.gamma(2, 50, n),
            "trend_30_90": rng.normal(0, 1, n),
            "sentiment_mean": rng.normal(0, 0.5, n),
            "tenure_days": rng.integers(30, 900, n).astype(float),
            "age": rng.integers(18, 80, n).astype(float),
            "gender": rng.choice(["f", "m", "x"], n).astype(object),
            "location": rng.choice(["north", "south", "east", "west"], n).astype(object),
            "segment": rng.choice(["bronze", "silver", "gold"], n).astype(object),
        }
    )
    for name in ("monetary_30d", "sentiment_mean", "age"):
        frame.loc[rng.random(n) < 0.05, name] = np.nan
    frame.loc[rng.random(n) < 0.05, "gender"] = None
    return frame


def build_synthetic_model(directory: Path, n_estimators: int = 200) -> Path:
    """Saves the project's XGBoost pipeline, fitted on synthetic rows, as an MLflow model."""
    import mlflow
    from mlflow.models import infer_signature

    from churn_kfp.learn import training

    frame = synthetic_features(3000, seed=1)
    rng = np.random.default_rng(2)
    logit = 0.06 * frame["recency_days"] - 0.4 * frame["frequency_30d"] - 1.0
    y = (rng.random(len(frame)) < 1 / (1 + np.exp(-logit.to_numpy()))).astype(int)
    categorical = ["gender", "location", "segment"]
    numeric = [c for c in frame.columns if c not in categorical]
    params = {"n_estimators": n_estimators, "max_depth": 4, "learning_rate": 0.1}
    pipeline = training.build_pipeline("xgboost", numeric, categorical, params=params)
    pipeline.fit(frame, y)
    path = directory / "model"
    mlflow.sklearn.save_model(
        pipeline,
        str(path),
        serialization_format="skops",
        skops_trusted_types=training.SKOPS_TRUSTED_TYPES,
        signature=infer_signature(frame, pipeline.predict_proba(frame)),
        input_example=frame.head(5),
        pyfunc_predict_fn="predict_proba",
        pip_requirements=["mlflow", "scikit-learn", "xgboost", "skops"],
        metadata={"threshold": 0.5},
    )
    return path


def pick_model(workdir: Path, model_dir: str | None) -> dict[str, Any]:
    """The model to serve: ``model_dir``, else the local champion, else a synthetic one."""
    from churn_kfp.core.config import Settings
    from churn_kfp.serving import server as serving

    if model_dir:
        return {"source": "given", "path": Path(model_dir), "served": None}
    tracking = Settings.from_env().tracking_uri
    if tracking.startswith("sqlite:///") and not Path(tracking.removeprefix("sqlite:///")).exists():
        print(f"no local registry at {tracking}; using a synthetic model")
        return {
            "source": "synthetic (ColumnTransformer + XGBoost 200 trees)",
            "path": build_synthetic_model(workdir),
            "served": None,
        }
    try:
        served = serving.resolve_model()
        return {
            "source": f"champion: {served.name} version {served.version}",
            "path": served.model_dir,
            "served": served,
        }
    except Exception as exc:  # no registry, no champion: fall back
        print(f"no champion in the local registry ({str(exc)[:120]}); using a synthetic model")
    return {
        "source": "synthetic (ColumnTransformer + XGBoost 200 trees)",
        "path": build_synthetic_model(workdir),
        "served": None,
    }


def bench_rows(model_path: Path, synthetic: bool, n: int = 1000) -> pd.DataFrame:
    from churn_kfp.serving import client as serving_client

    if synthetic:
        return synthetic_features(n, seed=7)
    example = serving_client.input_example(model_path)
    if example is None or example.empty:
        raise SystemExit(f"{model_path} has no input example to sample rows from")
    return example.sample(n, replace=True, random_state=7).reset_index(drop=True)


# ---------------------------------------------------------------------------------------------
# Measuring
# ---------------------------------------------------------------------------------------------


class Endpoint:
    """A POST endpoint with pre-encoded bodies, called over keep-alive connections."""

    def __init__(self, name: str, url: str, path: str, bodies: dict[str, bytes], parse):
        self.name = name
        self.host, port = url.removeprefix("http://").split(":")
        self.port = int(port)
        self.path = path
        self.bodies = bodies
        self.parse = parse

    def connect(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(self.host, self.port, timeout=60)

    def call(self, conn: http.client.HTTPConnection, body: bytes) -> bytes:
        headers = {"Content-Type": "application/json"}
        try:
            conn.request("POST", self.path, body=body, headers=headers)
            response = conn.getresponse()
        except (BrokenPipeError, ConnectionResetError, http.client.RemoteDisconnected):
            # The server closed an idle keep-alive connection (uvicorn: after 5 s): reconnect.
            conn.close()
            conn.request("POST", self.path, body=body, headers=headers)
            response = conn.getresponse()
        data = response.read()
        if response.status != 200:
            raise RuntimeError(f"{self.name}: HTTP {response.status}: {data[:300]!r}")
        return data


def _stats(times: list[float]) -> dict[str, float]:
    array = np.asarray(times)
    return {
        "p50_ms": round(float(np.percentile(array, 50)) * 1000, 2),
        "p95_ms": round(float(np.percentile(array, 95)) * 1000, 2),
        "p99_ms": round(float(np.percentile(array, 99)) * 1000, 2),
        "mean_ms": round(float(array.mean()) * 1000, 2),
        "n": len(times),
    }


def interleaved_latency(calls: dict[str, Any], n: int, warmup: int) -> dict[str, dict]:
    """Latency of sequential calls, taking turns between setups call by call.

    Taking turns spreads any change in the machine's background load (CI runners, shared
    boxes) evenly over the setups, so their ratios stay meaningful.
    """
    for _ in range(warmup):
        for call in calls.values():
            call()
    times: dict[str, list[float]] = {label: [] for label in calls}
    for _ in range(n):
        for label, call in calls.items():
            start = time.perf_counter()
            call()
            times[label].append(time.perf_counter() - start)
    return {label: _stats(values) for label, values in times.items()}


def throughput(callers: list[Any], seconds: float) -> tuple[int, float]:
    """Runs one thread per caller for ``seconds``; returns (calls done, elapsed seconds)."""
    counts = [0] * len(callers)
    errors: list[BaseException] = []
    stop = threading.Event()
    barrier = threading.Barrier(len(callers) + 1)

    def worker(i: int) -> None:
        barrier.wait()
        try:
            while not stop.is_set():
                callers[i]()
                counts[i] += 1
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(len(callers))]
    for thread in threads:
        thread.start()
    barrier.wait()
    start = time.perf_counter()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join(timeout=60)
    elapsed = time.perf_counter() - start
    if errors:
        raise RuntimeError(f"client failed: {errors[0]}")
    return sum(counts), elapsed


def interleaved_throughput(
    callers: dict[str, list[Any]], rounds: int, window: float
) -> dict[str, float]:
    """Requests/s per setup, measured in ``rounds`` short windows taking turns."""
    done = dict.fromkeys(callers, 0)
    spent = dict.fromkeys(callers, 0.0)
    for _ in range(rounds):
        for label, group in callers.items():
            count, elapsed = throughput(group, window)
            done[label] += count
            spent[label] += elapsed
    return {label: round(done[label] / spent[label], 1) for label in callers}


def measure(
    endpoints: dict[str, Endpoint], pyfunc: Any, frame: pd.DataFrame, cfg: dict[str, Any]
) -> dict[str, dict[str, Any]]:
    """Every figure for every setup; the in-process pyfunc is the last setup."""
    floor = "in-process pyfunc (floor)"
    one, big = frame.head(1), frame
    connections = {label: endpoint.connect() for label, endpoint in endpoints.items()}

    def caller(endpoint: Endpoint, conn: Any, size: str):
        return lambda: endpoint.call(conn, endpoint.bodies[size])

    small = {
        label: caller(endpoint, connections[label], "1") for label, endpoint in endpoints.items()
    }
    small[floor] = lambda: pyfunc.predict(one)
    large = {
        label: caller(endpoint, connections[label], "1000") for label, endpoint in endpoints.items()
    }
    large[floor] = lambda: pyfunc.predict(big)
    print("  latency, 1 row ...", flush=True)
    latency_small = interleaved_latency(small, cfg["n_small"], cfg["warmup"])
    print("  latency, 1,000 rows ...", flush=True)
    latency_large = interleaved_latency(large, cfg["n_large"], 2)
    for conn in connections.values():
        conn.close()
    results: dict[str, dict[str, Any]] = {
        label: {"latency_1_row": latency_small[label], "latency_1000_rows": latency_large[label]}
        for label in small
    }
    for clients in (1, 8):
        print(f"  requests/s, {clients} client(s) ...", flush=True)
        groups: dict[str, list[Any]] = {}
        pools = []
        for label, endpoint in endpoints.items():
            conns = [endpoint.connect() for _ in range(clients)]
            pools += conns
            groups[label] = [caller(endpoint, conn, "1") for conn in conns]
        if clients == 1:
            groups[floor] = [lambda: pyfunc.predict(one)]
        rps = interleaved_throughput(groups, cfg["rounds"], cfg["window"])
        for conn in pools:
            conn.close()
        for label, value in rps.items():
            results[label][f"rps_1_row_{clients}_clients"] = value
    return results


# ---------------------------------------------------------------------------------------------
# The servers
# ---------------------------------------------------------------------------------------------


@contextmanager
def mlflow_serve(model_path: Path, log_path: Path, timeout: float = 180.0):
    """Runs ``mlflow models serve`` on a free loopback port; yields its base URL."""
    import requests

    from churn_kfp.serving import server as serving

    port = serving.free_port()
    path = os.environ.get("PATH", "")
    mlflow_cli = Path(sys.executable).with_name("mlflow")
    command = [str(mlflow_cli)] if mlflow_cli.is_file() else [sys.executable, "-m", "mlflow"]
    command += [
        "models",
        "serve",
        "-m",
        str(model_path),
        "--env-manager",
        "local",
        "-h",
        "127.0.0.1",
        "-p",
        str(port),
    ]
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            # mlflow execs `uvicorn` by name: it must be on PATH (the venv's bin folder).
            env={**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{path}"},
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + timeout
            while True:
                if process.poll() is not None:
                    raise RuntimeError(
                        f"mlflow models serve exited ({process.returncode}); see {log_path}"
                    )
                try:
                    if requests.get(f"{url}/ping", timeout=2).status_code == 200:
                        break
                except requests.RequestException:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"mlflow models serve not ready in {timeout} s")
                time.sleep(0.25)
            yield url
        finally:
            serving.stop_process(process, grace_seconds=10)


def enter_concurrently(stack: ExitStack, factories: dict[str, Any]) -> dict[str, Any]:
    """Enters several context managers at once (servers start in parallel).

    Each one that started is registered on ``stack``, so it is left even if another failed.

    Returns:
        label -> (value the context manager yielded, seconds it took to enter).
    """

    def enter(factory):
        started = time.perf_counter()
        manager = factory()
        value = manager.__enter__()
        return manager, value, round(time.perf_counter() - started, 1)

    with ThreadPoolExecutor(max_workers=len(factories)) as pool:
        futures = {label: pool.submit(enter, factory) for label, factory in factories.items()}
    entered: dict[str, Any] = {}
    error: BaseException | None = None
    for label, future in futures.items():
        try:
            manager, value, seconds = future.result()
        except BaseException as exc:
            error = error or exc
            continue
        stack.push(manager.__exit__)
        entered[label] = (value, seconds)
    if error is not None:
        raise error
    return entered


def v2_bodies(frame: pd.DataFrame) -> dict[str, bytes]:
    from churn_kfp.serving import client as serving_client

    return {
        "1": json.dumps(serving_client.frame_to_v2_request(frame.head(1))).encode(),
        "1000": json.dumps(serving_client.frame_to_v2_request(frame)).encode(),
    }


def split_bodies(frame: pd.DataFrame) -> dict[str, bytes]:
    def body(part: pd.DataFrame) -> bytes:
        # to_json writes NaN/None as null, which the scoring server reads back as missing.
        split = json.loads(part.to_json(orient="split", index=False))
        return json.dumps({"dataframe_split": split}).encode()

    return {"1": body(frame.head(1)), "1000": body(frame)}


def parse_v2(data: bytes) -> np.ndarray:
    from churn_kfp.serving import client as serving_client

    return serving_client.parse_v2_response(json.loads(data)).probability


def parse_mlflow(data: bytes) -> np.ndarray:
    from churn_kfp.registry.contract import positive_class_proba

    return positive_class_proba(np.asarray(json.loads(data)["predictions"], dtype=float))


# ---------------------------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------------------------


def run(
    model_dir: str | None = None,
    *,
    quick: bool = False,
    with_stock: bool = True,
    out: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """Measures every setup, prints a table and returns the results (also written to ``out``).

    ``bench/run_all.py`` calls ``run(quick=...)`` and writes ``serving.json`` itself; the
    command line writes ``--out`` (default ``bench/results/serving.json``).
    """
    from churn_kfp.core.config import apply_runtime_env

    apply_runtime_env()  # what the image and the CLI use; set before xgboost is imported
    from churn_kfp.registry.loading import load_pyfunc
    from churn_kfp.serving import server as serving

    cfg = {
        "n_small": 100 if quick else 250,
        "n_large": 15 if quick else 40,
        "warmup": 10 if quick else 20,
        "rounds": 3 if quick else 6,
        "window": 0.5,
    }
    started = time.perf_counter()
    load_before = os.getloadavg()
    results: dict[str, Any] = {
        "benchmark": "serving",
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_average_at_start": [round(x, 2) for x in load_before],
        },
        "config": cfg,
        "setups": {},
    }
    with tempfile.TemporaryDirectory(prefix="churn-serving-bench-") as tmp, ExitStack() as stack:
        workdir = Path(tmp)
        picked = pick_model(workdir, model_dir)
        model_path = Path(picked["path"])
        served = picked["served"] or serving.ServedModel(
            name="churn-classifier", version="1", model_dir=model_path
        )
        frame = bench_rows(model_path, synthetic=picked["source"].startswith("synthetic"))
        results["model"] = {"source": picked["source"], "path": str(model_path)}
        pyfunc = load_pyfunc(model_path, model_name=served.name, version=served.version)
        from churn_kfp.registry.contract import positive_class_proba

        expected = positive_class_proba(np.asarray(pyfunc.predict(frame)))

        setups: dict[str, Any] = {OURS: serving.VALIDATING_RUNTIME}
        if with_stock:
            setups["mlserver stock mlflow runtime"] = serving.STOCK_RUNTIME
        factories = {
            label: (
                lambda runtime=runtime, label=label: serving.serve(
                    served, workdir=workdir / label.split()[1], runtime=runtime
                )
            )
            for label, runtime in setups.items()
        }
        not_started: dict[str, str] = {}
        factories[MLFLOW_SERVE] = lambda: optional(
            mlflow_serve(model_path, workdir / "mlflow-serve.log"), MLFLOW_SERVE, not_started
        )
        print(f"starting {len(factories)} servers ...", flush=True)
        diffs: dict[str, float] = {}
        answers: dict[str, np.ndarray] = {}
        started_servers = enter_concurrently(stack, factories)
        endpoints: dict[str, Endpoint] = {}
        startup: dict[str, float] = {}
        for label, (server, seconds) in started_servers.items():
            if server is None:
                continue
            startup[label] = seconds
            if label in setups:
                endpoints[label] = Endpoint(
                    label, server.url, f"/v2/models/{served.name}/infer", v2_bodies(frame), parse_v2
                )
            else:
                endpoints[label] = Endpoint(
                    label, server, "/invocations", split_bodies(frame), parse_mlflow
                )

        for label, endpoint in endpoints.items():
            conn = endpoint.connect()
            got = endpoint.parse(endpoint.call(conn, endpoint.bodies["1000"]))
            one_row = endpoint.parse(endpoint.call(conn, endpoint.bodies["1"]))
            conn.close()
            answers[label] = np.concatenate([got, one_row])
            diffs[label] = float(np.max(np.abs(answers[label] - np.append(expected, expected[0]))))
        print("measuring (setups take turns) ...", flush=True)
        results["setups"] = measure(endpoints, pyfunc, frame, cfg)
        for label, seconds in startup.items():
            results["setups"][label]["startup_s"] = seconds
            results["setups"][label]["max_abs_diff_vs_in_process"] = diffs[label]
        results["not_started"] = not_started

    ours = results["setups"][OURS]
    reference = results["setups"].get(MLFLOW_SERVE)
    results["ratios_vs_mlflow_serve"] = {
        label: _ratios(values, reference) for label, values in results["setups"].items()
    }
    results["targets_vs_mlflow_serve"] = _targets_vs_mlflow(results, answers)
    results["targets_ms"] = {
        "p50_1_row": {
            "target": TARGETS_MS["p50_1_row"],
            "measured": ours["latency_1_row"]["p50_ms"],
            "met": ours["latency_1_row"]["p50_ms"] <= TARGETS_MS["p50_1_row"],
        },
        "p50_1000_rows": {
            "target": TARGETS_MS["p50_1000_rows"],
            "measured": ours["latency_1000_rows"]["p50_ms"],
            "met": ours["latency_1000_rows"]["p50_ms"] <= TARGETS_MS["p50_1000_rows"],
        },
    }
    results["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    results["seconds"] = round(time.perf_counter() - started, 1)
    print(format_table(results))
    if out is not None:
        path = Path(out)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(results, indent=2) + "\n")
        print(f"wrote {path}")
    return results


def optional(manager: Any, label: str, not_started: dict[str, str]) -> Any:
    """``manager``, or a context yielding ``None`` (reason in ``not_started``) if it fails."""

    @contextmanager
    def entered():
        try:
            value = manager.__enter__()
        except Exception as exc:  # reported in the results, the other setups still run
            not_started[label] = f"{type(exc).__name__}: {exc}"
            print(f"{label} not started: {not_started[label]}", flush=True)
            yield None
            return
        try:
            yield value
        finally:
            manager.__exit__(None, None, None)

    return entered()


def _ratios(values: dict[str, Any], reference: dict[str, Any] | None) -> dict[str, float | None]:
    ratios: dict[str, float | None] = {}
    for key in ("latency_1_row", "latency_1000_rows"):
        for stat in ("p50_ms", "p95_ms", "p99_ms"):
            ratios[f"{key}_{stat}"] = (
                round(values[key][stat] / reference[key][stat], 3) if reference else None
            )
    for key in ("rps_1_row_1_clients", "rps_1_row_8_clients"):
        ratios[key] = (
            round(values[key] / reference[key], 2) if reference and key in values else None
        )
    return ratios


def _targets_vs_mlflow(results: dict[str, Any], answers: dict[str, np.ndarray]) -> dict:
    """Issue 16's targets for our server against ``mlflow models serve`` (same run)."""
    ratios = results["ratios_vs_mlflow_serve"][OURS]
    measured = {
        "latency_1_row_p50_ratio": ratios["latency_1_row_p50_ms"],
        "rps_1_row_8_clients_ratio": ratios["rps_1_row_8_clients"],
        "max_abs_diff": (
            float(np.max(np.abs(answers[OURS] - answers[MLFLOW_SERVE])))
            if MLFLOW_SERVE in answers
            else None
        ),
    }
    targets = {}
    for key, (relation, bound) in TARGETS_VS_MLFLOW.items():
        value = measured[key]
        met = None if value is None else (value <= bound if relation == "<=" else value >= bound)
        targets[key] = {"target": f"{relation} {bound:g}", "measured": value, "met": met}
    return targets


def format_table(results: dict[str, Any]) -> str:
    header = (
        f"{'setup':32} {'1 row p50':>9} {'p95':>7} {'1000 p50':>9} {'p95':>7} "
        f"{'req/s x1':>9} {'req/s x8':>9} {'p50 vs mlflow':>14} {'max |diff|':>10}"
    )
    machine = results["machine"]
    lines = [
        f"serving benchmark ({results['model']['source']}; {machine['cpus']} CPUs, load average "
        f"{machine['load_average_at_start'][0]:.1f} at start, "
        f"{machine['load_average_at_end'][0]:.1f} at end), latencies in ms",
        header,
        "-" * len(header),
    ]
    for label, values in results["setups"].items():
        ratio = results["ratios_vs_mlflow_serve"][label]
        rps8 = values.get("rps_1_row_8_clients")
        diff = values.get("max_abs_diff_vs_in_process")
        p50_ratio = (
            f"{ratio['latency_1_row_p50_ms']:6.2f}/{ratio['latency_1000_rows_p50_ms']:.2f}"
            if ratio["latency_1_row_p50_ms"] is not None
            else "-"
        )
        lines.append(
            f"{label:32} {values['latency_1_row']['p50_ms']:9.1f} "
            f"{values['latency_1_row']['p95_ms']:7.1f} "
            f"{values['latency_1000_rows']['p50_ms']:9.1f} "
            f"{values['latency_1000_rows']['p95_ms']:7.1f} "
            f"{values['rps_1_row_1_clients']:9.0f} "
            f"{(f'{rps8:9.0f}' if rps8 is not None else '        -')} "
            f"{p50_ratio:>14} {(f'{diff:10.1e}' if diff is not None else '         -')}"
        )
    for label, reason in results.get("not_started", {}).items():
        lines.append(f"{label:32} not started: {reason[:200]}")
    targets = results["targets_ms"]
    lines.append(
        "targets (churn serve): 1-row p50 <= {t1:g} ms: {m1} ({v1:.1f}); 1000-row p50 <= {t2:g} "
        "ms: {m2} ({v2:.1f})".format(
            t1=targets["p50_1_row"]["target"],
            m1="met" if targets["p50_1_row"]["met"] else "NOT met",
            v1=targets["p50_1_row"]["measured"],
            t2=targets["p50_1000_rows"]["target"],
            m2="met" if targets["p50_1000_rows"]["met"] else "NOT met",
            v2=targets["p50_1000_rows"]["measured"],
        )
    )
    verdict = {True: "met", False: "NOT met", None: "not measured"}
    lines.append(
        "targets vs `mlflow models serve` (same run): "
        + "; ".join(
            f"{key} {target['target']}: {verdict[target['met']]} ({target['measured']})"
            for key, target in results["targets_vs_mlflow_serve"].items()
        )
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(DEFAULT_OUT), help="JSON results file")
    parser.add_argument("--model-dir", default=None, help="serve this MLflow model folder")
    parser.add_argument("--quick", action="store_true", help="fewer requests (smoke run)")
    parser.add_argument(
        "--no-stock", action="store_true", help="skip MLServer with the stock MLflow runtime"
    )
    args = parser.parse_args(argv)
    run(args.model_dir, quick=args.quick, with_stock=not args.no_stock, out=args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
