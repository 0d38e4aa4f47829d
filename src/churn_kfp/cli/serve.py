"""``churn serve`` and ``churn predict``: serve the champion over V2, score a file through it."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path

from churn_kfp.core.config import MODEL_NAME, Settings

DEFAULT_PORT = 8080
DEFAULT_BATCH_SIZE = 1000
_KEPT_COLUMNS = ("customer_id", "cutoff")
"""Identifying columns copied from the input file to the predictions (not sent)."""


def _serve(args: argparse.Namespace) -> int:
    from churn_kfp.registry.loading import UnloadableModelError
    from churn_kfp.serving import server as serving
    from churn_kfp.serving.limits import RequestLimits
    from churn_kfp.serving.smoke import SmokeTestError, check_local_server

    settings = Settings.from_env()
    version = args.version or os.environ.get("MODEL_VERSION") or None
    try:
        limits = RequestLimits.from_env()
        model = serving.resolve_model(version, settings=settings, model_name=args.model)
    except (LookupError, ValueError, UnloadableModelError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    record_dir = settings.home / "serving" / "servers"
    for running in serving.recorded_servers(record_dir):
        if running.port == args.port:
            print(f"error: port {args.port} is taken: {running.describe()}", file=sys.stderr)
            return 1
        if not running.parent_alive:
            print(f"warning: a stale server is still running: {running.describe()}")
    if serving.port_in_use(args.port, args.host):
        print(
            f"error: port {args.port} is already in use on {args.host}; pick another with "
            f"--port (make serve PORT=...)",
            file=sys.stderr,
        )
        return 1
    which = f"the '{model.alias}' alias" if model.alias else "--version/MODEL_VERSION"
    print(f"serving {model.name} version {model.version} (from {which}) from {model.model_dir}")
    print("starting MLServer (loading the model takes a few seconds) ...", flush=True)
    runtime = serving.STOCK_RUNTIME if args.stock_runtime else serving.VALIDATING_RUNTIME

    # `kill <pid>` (or make being stopped) should stop the child too, like Ctrl-C does.
    def _terminate(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        try:
            server = serving.start_server(
                model,
                http_port=args.port,
                grpc_port=args.grpc_port or None,
                metrics_port=args.metrics_port,
                host=args.host,
                runtime=runtime,
                workdir=serving.serving_dir(settings, model.name, model.version),
                record_dir=record_dir,
            )
        except serving.ServerStartError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        try:
            checked = check_local_server(
                server.url, model.name, model.model_dir, model.example_probabilities
            )
        except (SmokeTestError, OSError, ValueError) as exc:
            server.stop()
            print(f"error: smoke test failed, server stopped: {exc}", file=sys.stderr)
            return 1
        print(f"smoke test: {checked}", flush=True)
        print(_banner(server, limits), flush=True)
        try:
            while server.process.poll() is None:
                time.sleep(0.5)
        except KeyboardInterrupt:
            print("\nstopping MLServer ...", flush=True)
            server.stop()
            print("stopped")
            return 0
        print(
            f"error: MLServer exited with code {server.process.returncode}\n{server.log_tail()}",
            file=sys.stderr,
        )
        server.stop()
        return 1
    finally:
        signal.signal(signal.SIGTERM, previous)


def _banner(server, limits) -> str:
    from churn_kfp.serving import client as serving_client
    from churn_kfp.serving import server as serving

    model = server.model
    example = serving_client.input_example(model.model_dir)
    lines = [
        "",
        f"MLServer is ready in {server.startup_seconds:.1f} s (V2 / Open Inference protocol)",
        f"  URL:       {server.url}",
        f"  health:    {server.url}/v2/health/ready",
        f"  metadata:  {server.url}/v2/models/{model.name}",
        f"  inference: {server.infer_url}",
        f"  gRPC:      {server.grpc_address}",
    ]
    if server.metrics_url:
        lines.append(f"  metrics:   {server.metrics_url}")
    lines.append(f"  runtime:   {server.runtime}  (log: {server.log_path})")
    lines.append(
        f"  limits:    {limits.max_body_bytes} bytes per request body, {limits.max_rows} rows "
        "per request (CHURN_SERVE_MAX_BODY_BYTES, CHURN_SERVE_MAX_ROWS)"
    )
    if server.runtime == serving.VALIDATING_RUNTIME:
        if model.threshold is not None:
            lines.append(
                f"  returns:   churn_probability per row, and churn = probability >= "
                f"{model.threshold:g} (the version's tuned threshold)"
            )
        else:
            lines.append("  returns:   churn_probability per row (no threshold tag on the version)")
    else:
        lines.append("  returns:   one [n, 2] tensor: P(no churn), P(churn) per row")
    if example is not None and len(example):
        lines += [
            "",
            "try it:",
            serving_client.curl_example(server.url, example.head(2), model.name),
        ]
    lines += [
        "",
        f"score a file: churn predict features.parquet --url {server.url} --out predictions.csv",
        "press Ctrl-C to stop",
    ]
    return "\n".join(lines)


def read_table(path: Path):
    """Reads a CSV or Parquet file of feature rows."""
    import pandas as pd

    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        return pd.read_parquet(path)
    if suffix in (".csv", ".txt") or path.name.lower().endswith(".csv.gz"):
        return pd.read_csv(path)
    raise ValueError(f"{path}: expected a .csv or .parquet file")


def write_table(frame, path: Path) -> None:
    """Writes ``frame`` as CSV or Parquet, by the file suffix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() in (".parquet", ".pq"):
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False)


def _predict(args: argparse.Namespace) -> int:
    import pandas as pd
    from tqdm import tqdm

    from churn_kfp.core import columns
    from churn_kfp.serving import client as serving_client

    path = Path(args.features)
    if not path.is_file():
        print(f"error: {path} does not exist", file=sys.stderr)
        return 2
    try:
        frame = read_table(path)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    url = args.url.rstrip("/")
    try:
        metadata = serving_client.model_metadata(url, args.model)
    except serving_client.ServingError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 1
    datatypes = serving_client.input_datatypes(metadata)
    wanted = list(datatypes) or columns.feature_columns(frame.columns)
    missing = [name for name in wanted if name not in frame.columns]
    if missing:
        print(
            f"error: {path} lacks the model's input column(s) {missing}; the model reads {wanted}",
            file=sys.stderr,
        )
        return 1
    if len(frame) == 0:
        print(f"error: {path} has no rows", file=sys.stderr)
        return 1
    not_sent = [name for name in frame.columns if name not in wanted]
    if not_sent:
        print(f"not sent to the model (not model inputs): {not_sent}", file=sys.stderr)
    try:
        with tqdm(total=len(frame), unit="row", desc="scoring", disable=args.quiet) as bar:
            result = serving_client.predict_frame(
                url,
                frame,
                batch_size=args.batch_size,
                model_name=args.model,
                columns=wanted,
                datatypes=datatypes,
                progress=bar.update,
            )
    except serving_client.ServingError as exc:
        print(f"error: {exc.message if exc.status == 0 else exc}", file=sys.stderr)
        return 1
    out = pd.DataFrame({name: frame[name].to_numpy() for name in _KEPT_COLUMNS if name in frame})
    out["churn_probability"] = result.probability
    threshold = args.threshold
    if threshold is None:
        threshold = result.threshold
    if threshold is None:
        threshold = (metadata.get("parameters") or {}).get("threshold")
    if args.threshold is None and result.decision is not None:
        out["churn"] = result.decision.astype(int)
    elif threshold is not None:
        out["churn"] = (result.probability >= float(threshold)).astype(int)
    destination = Path(args.out)
    write_table(out, destination)
    summary = f"wrote {len(out)} predictions to {destination}"
    if "churn" in out:
        summary += f" ({int(out['churn'].sum())} predicted to churn at threshold {threshold:g})"
    print(summary)
    return 0


def register(subparsers) -> None:
    """Adds the ``serve`` and ``predict`` sub-commands."""
    parser = subparsers.add_parser(
        "serve",
        help="serve the champion model over the V2 inference protocol (MLServer)",
        description="Serve a registered churn model with MLServer and the MLflow runtime, the "
        "server KServe runs for `modelFormat: mlflow`, on this machine. Prints the URL and a "
        "curl example; Ctrl-C stops it. Requests carry the raw feature columns; the answer "
        "is the churn probability per row (and the decision at the tuned threshold). "
        "Bad requests get HTTP 422 naming the offending columns; bodies over "
        "CHURN_SERVE_MAX_BODY_BYTES (default 8 MiB) get 413, batches over CHURN_SERVE_MAX_ROWS "
        "(default 10000) 422. Only scikit-learn models saved with skops are served: a version "
        "saved with pickle or cloudpickle is refused by name before anything is loaded.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--version",
        default=None,
        help="registered version to serve (env MODEL_VERSION); default: the champion alias",
    )
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="HTTP port")
    parser.add_argument(
        "--grpc-port", type=int, default=0, help="gRPC port (MLServer always serves gRPC); 0: any"
    )
    parser.add_argument(
        "--metrics-port", type=int, default=None, help="Prometheus metrics port; default: none"
    )
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to bind; the default keeps the server private to this machine",
    )
    parser.add_argument("--model", default=MODEL_NAME, help="registered model name")
    parser.add_argument(
        "--stock-runtime",
        action="store_true",
        help="use MLServer's unmodified MLflow runtime (what KServe runs by default): "
        "no input validation, returns the raw [n, 2] probabilities",
    )
    parser.set_defaults(handler=_serve)

    predict = subparsers.add_parser(
        "predict",
        help="score a CSV/Parquet file of feature rows through a running model server",
        description="Send the feature rows of a CSV or Parquet file to a V2 model server "
        "(`churn serve`, or a KServe InferenceService URL) in batches and write one "
        "prediction per row: customer_id and cutoff (when present), churn_probability, and "
        "churn (0/1) when a threshold is known (from the server or --threshold).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    predict.add_argument("features", help="CSV or Parquet file of feature rows")
    predict.add_argument(
        "--url", default=f"http://127.0.0.1:{DEFAULT_PORT}", help="base URL of the server"
    )
    predict.add_argument("--out", default="predictions.csv", help="output .csv or .parquet")
    predict.add_argument(
        "--batch-size", type=_positive_int, default=DEFAULT_BATCH_SIZE, help="rows per request"
    )
    predict.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="decision threshold; default: the one the server reports",
    )
    predict.add_argument("--model", default=MODEL_NAME, help="model name in the URL")
    predict.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    predict.set_defaults(handler=_predict)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value
