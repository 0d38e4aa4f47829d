"""Serve the registered churn model locally with MLServer (the same server KServe runs).

Locally the champion runs in the same server KServe uses for ``modelFormat: mlflow``:
MLServer with an MLflow runtime, speaking the V2 (Open Inference) protocol. The runtime is
:class:`churn_kfp.serving.runtime.ValidatingMLflowRuntime` (MLServer's MLflow runtime plus
input validation and a ``churn_probability`` output); ``runtime=STOCK_RUNTIME`` serves with
``mlserver_mlflow.MLflowRuntime``'s behaviour instead (only its model loading is replaced by
the safe loader). Either way only skops models load: others are refused by name.

Server side: :func:`resolve_model` finds a registered version (the champion alias or a given
version) and a local copy of its artifacts, :func:`write_server_config` writes MLServer's
``settings.json`` and ``model-settings.json``, :func:`serve` runs ``mlserver start`` as a child
process bound to 127.0.0.1 and always stops it.

The client side (V2 requests from DataFrames) is :mod:`churn_kfp.serving.client`.

Nothing here touches MLflow, the network or the file system at import time.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from churn_kfp.core.config import CHAMPION_ALIAS, MODEL_NAME, Settings, apply_runtime_env
from churn_kfp.core.processes import process_alive
from churn_kfp.registry.contract import EXAMPLE_PROBABILITIES_TAG, THRESHOLD_TAG, parse_threshold
from churn_kfp.serving.launch import PARENT_FD_ENV, SERVER_SETTINGS
from churn_kfp.serving.limits import RequestLimits

logger = logging.getLogger(__name__)

VALIDATING_RUNTIME = "churn_kfp.serving.runtime.ValidatingMLflowRuntime"
"""Our runtime: validation, ``churn_probability`` + ``churn`` outputs (the default)."""
STOCK_RUNTIME = "churn_kfp.serving.runtime.SafeMLflowRuntime"
"""MLServer's MLflow runtime as KServe's ``kserve-mlserver`` runs it for ``mlflow`` models,
except that the model loads through the safe loader (skops only, no pickle flag)."""

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
READY_TIMEOUT_S = 180.0


class ServerStartError(RuntimeError):
    """``mlserver start`` exited or did not become ready in time."""


@dataclass(frozen=True)
class ServedModel:
    """A registered model version ready to be served from a local directory.

    Attributes:
        name: Registered model name.
        version: Registered version (string).
        model_dir: Local directory holding the MLflow model (``MLmodel`` file).
        source_uri: Where the artifacts live in the registry (``file://``, ``s3://``...).
        threshold: Tuned decision threshold from the version's ``threshold`` tag, if any.
        alias: The alias used to find the version, if any.
        run_id: The MLflow run that logged the model, if known.
        model_id: The MLflow 3 logged-model id (``m-...``), if known.
        example_probabilities: P(churn) of the input example recorded at registration, if
            any (the smoke test's reference).
    """

    name: str
    version: str
    model_dir: Path
    source_uri: str = ""
    threshold: float | None = None
    alias: str | None = None
    run_id: str | None = None
    model_id: str | None = None
    example_probabilities: tuple[float, ...] | None = None

    @property
    def model_uri(self) -> str:
        """The registry URI of this version (``models:/name/version``)."""
        return f"models:/{self.name}/{self.version}"


def resolve_model(
    version: str | int | None = None,
    *,
    settings: Settings | None = None,
    model_name: str = MODEL_NAME,
    alias: str = CHAMPION_ALIAS,
) -> ServedModel:
    """Finds a registered version and a local copy of its artifacts.

    Local artifacts (``file://``) are used in place; others are downloaded once into
    ``$CHURN_HOME/serving/<model name>/<version>/<model id>/model`` (a version's artifacts
    never change). Either way the ``MLmodel`` file must carry the version's model id, and it
    must describe a skops model (:func:`churn_kfp.registry.loading.check_model_dir`): a
    pickled model is refused here, before a server is started.

    Args:
        version: Version number; ``None`` means the version the ``alias`` points to.
        settings: Where the registry is; default :meth:`Settings.from_env`.
        model_name: Registered model name.
        alias: Alias used when ``version`` is ``None``.

    Returns:
        The version, its local model directory and its tuned threshold.

    Raises:
        LookupError: No such version or alias (with a hint on how to get one), or files
            that are not that version's.
        UnloadableModelError: Its files are missing, or
            :class:`~churn_kfp.registry.loading.UnsafeModelError`: not a skops model.
    """
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from churn_kfp.registry.loading import check_model_dir

    settings = settings or Settings.from_env()
    client = MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.tracking_uri)
    try:
        if version is None or str(version).strip() == "":
            found = client.get_model_version_by_alias(model_name, alias)
        else:
            found = client.get_model_version(model_name, str(version).strip())
    except MlflowException as exc:
        what = f"version {version}" if version else f"version with the alias '{alias}'"
        raise LookupError(
            f"the registry at {settings.tracking_uri} has no {what} of model '{model_name}' "
            f"({exc.message.splitlines()[0]}); train one with `make run` (or `churn run`), "
            "or pick an existing version with --version / MODEL_VERSION"
        ) from None
    source = client.get_model_version_download_uri(model_name, found.version)
    model_id = _registered_model_id(found)
    cache = serving_dir(settings, model_name, str(found.version)) / (model_id or "no-model-id")
    model_dir = _local_model_dir(source, cache, model_id)
    check_model_dir(model_dir, model_name=model_name, version=str(found.version))
    return ServedModel(
        name=model_name,
        version=str(found.version),
        model_dir=model_dir,
        source_uri=source,
        threshold=parse_threshold((found.tags or {}).get(THRESHOLD_TAG)),
        alias=alias if version is None or str(version).strip() == "" else None,
        run_id=found.run_id,
        model_id=model_id,
        example_probabilities=_recorded_probabilities(
            (found.tags or {}).get(EXAMPLE_PROBABILITIES_TAG)
        ),
    )


def _recorded_probabilities(tag: str | None) -> tuple[float, ...] | None:
    """The example probabilities tag as floats (None when absent or unreadable)."""
    if not tag:
        return None
    try:
        return tuple(float(p) for p in json.loads(tag))
    except (ValueError, TypeError):
        return None


def _registered_model_id(found: Any) -> str | None:
    """The logged-model id of a version: its ``model_id``, else its ``models:/m-...`` source."""
    if getattr(found, "model_id", None):
        return str(found.model_id)
    source = str(found.source or "")
    logged = source.removeprefix("models:/")
    if logged != source and logged.startswith("m-") and "/" not in logged:
        return logged
    return None


def serving_dir(settings: Settings, model_name: str, version: str) -> Path:
    """``$CHURN_HOME/serving/<model name>/<version>``: one version's cache, configs, logs."""
    from urllib.parse import quote

    return settings.home / "serving" / quote(model_name, safe="") / str(version)


def _model_id_of(model_dir: Path) -> str | None:
    import yaml

    try:
        return (yaml.safe_load((model_dir / "MLmodel").read_text()) or {}).get("model_id")
    except (OSError, yaml.YAMLError, AttributeError):
        return None


def _local_model_dir(source: str, cache: Path, model_id: str | None = None) -> Path:
    from urllib.parse import unquote, urlparse

    parsed = urlparse(source)
    if parsed.scheme in ("", "file"):
        local = Path(unquote(parsed.path) if parsed.scheme else source)
        if (local / "MLmodel").is_file():
            _check_model_id(local, model_id, source)
            return local
    target = cache / "model"
    if (target / "MLmodel").is_file():
        if model_id is None or _model_id_of(target) == model_id:
            return target
        logger.warning("%s holds another model than %s: downloading again", target, model_id)
    import mlflow.artifacts

    staging = cache / "download"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True, exist_ok=True)
    logger.info("downloading %s to %s", source, target)
    downloaded = Path(
        mlflow.artifacts.download_artifacts(artifact_uri=source, dst_path=str(staging))
    )
    if not (downloaded / "MLmodel").is_file():
        raise LookupError(f"{source} holds no MLflow model (no MLmodel file)")
    _check_model_id(downloaded, model_id, source)
    shutil.rmtree(target, ignore_errors=True)
    downloaded.rename(target)
    shutil.rmtree(staging, ignore_errors=True)
    return target


def _check_model_id(model_dir: Path, model_id: str | None, source: str) -> None:
    found = _model_id_of(model_dir)
    if model_id is not None and found != model_id:
        raise LookupError(
            f"{source} holds model id {found}, but the registry says the version is {model_id}"
        )


def free_port(host: str = DEFAULT_HOST) -> int:
    """Returns a TCP port that is free on ``host`` right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_in_use(port: int, host: str = DEFAULT_HOST) -> bool:
    """Whether ``host:port`` cannot be bound the way the server binds it (``SO_REUSEADDR``).

    Connections lingering in ``TIME_WAIT`` after a previous server do not count, as they
    do not stop the server either.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def write_server_config(
    model: ServedModel,
    directory: str | os.PathLike[str],
    *,
    http_port: int,
    grpc_port: int,
    metrics_port: int | None = None,
    host: str = DEFAULT_HOST,
    runtime: str = VALIDATING_RUNTIME,
    threshold: float | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Writes MLServer's ``settings.json`` and ``<model name>/model-settings.json``.

    The server binds ``host`` only (default loopback), runs with
    :data:`~churn_kfp.serving.launch.SERVER_SETTINGS` (the model in the server process, no
    log line per request) and has no metrics server unless ``metrics_port`` is given.
    MLServer always starts its gRPC server, hence ``grpc_port``; its messages are capped at
    the body limit (:class:`~churn_kfp.serving.limits.RequestLimits`).

    Args:
        model: The version to serve.
        directory: Folder to write into (created); ``mlserver start <directory>``.
        http_port: REST port.
        grpc_port: gRPC port.
        metrics_port: Prometheus metrics port, or ``None`` for no metrics server.
        host: Address to bind.
        runtime: MLServer runtime class (:data:`VALIDATING_RUNTIME` or :data:`STOCK_RUNTIME`).
        threshold: Decision threshold for the ``churn`` output; default ``model.threshold``.
        extra: More runtime settings (``parameters.extra``), e.g. ``non_nullable_columns``.

    Returns:
        The directory.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    settings: dict[str, Any] = {
        "host": host,
        "http_port": int(http_port),
        "grpc_port": int(grpc_port),
        "grpc_max_message_length": RequestLimits.from_env().max_body_bytes,
        **SERVER_SETTINGS,
        "load_models_at_startup": True,
        "metrics_endpoint": "/metrics" if metrics_port else None,
    }
    if metrics_port:
        settings["metrics_port"] = int(metrics_port)
    runtime_extra = dict(extra or {})
    threshold = model.threshold if threshold is None else threshold
    if threshold is not None and runtime == VALIDATING_RUNTIME:
        runtime_extra.setdefault("threshold", float(threshold))
    model_settings: dict[str, Any] = {
        "name": model.name,
        "implementation": runtime,
        "versions": [model.version],
        "parameters": {"uri": str(Path(model.model_dir).absolute()), "version": model.version},
    }
    if runtime_extra:
        model_settings["parameters"]["extra"] = runtime_extra
    (directory / "settings.json").write_text(json.dumps(settings, indent=2) + "\n")
    # MLServer finds models in sub-folders; naming the folder after the model keeps it quiet.
    model_folder = directory / model.name
    model_folder.mkdir(exist_ok=True)
    (model_folder / "model-settings.json").write_text(json.dumps(model_settings, indent=2) + "\n")
    return directory


@dataclass
class RunningServer:
    """A started ``mlserver`` child process.

    Attributes:
        model: The served version.
        url: Base URL of the REST API (``http://127.0.0.1:PORT``).
        grpc_address: ``host:port`` of the gRPC API.
        process: The child process.
        config_dir: Folder with ``settings.json`` and ``model-settings.json``.
        log_path: File receiving the server's stdout and stderr.
        metrics_url: Prometheus endpoint, if enabled.
        startup_seconds: Time from start to ready.
    """

    model: ServedModel
    url: str
    grpc_address: str
    process: subprocess.Popen
    config_dir: Path
    log_path: Path
    metrics_url: str | None = None
    startup_seconds: float = 0.0
    runtime: str = VALIDATING_RUNTIME
    _log_file: Any = field(default=None, repr=False)
    _record: Path | None = field(default=None, repr=False)
    _parent_end: int | None = field(default=None, repr=False)

    @property
    def infer_url(self) -> str:
        """The V2 inference endpoint of the model."""
        return f"{self.url}/v2/models/{self.model.name}/infer"

    def log_tail(self, lines: int = 40) -> str:
        """The last lines of the server log."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, grace_seconds: float = 10.0) -> int | None:
        """Stops the server: SIGTERM, then SIGKILL after ``grace_seconds``; returns its code."""
        code = stop_process(self.process, grace_seconds)
        if self._record is not None:
            self._record.unlink(missing_ok=True)
            self._record = None
        if self._parent_end is not None:
            os.close(self._parent_end)
            self._parent_end = None
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        return code


def mlserver_command(config_dir: str | os.PathLike[str]) -> list[str]:
    """The command line that starts MLServer (with the request limits) from this interpreter."""
    return [sys.executable, "-m", "churn_kfp.serving.launch", "start", str(config_dir)]


def start_server(
    model: ServedModel,
    *,
    http_port: int | None = None,
    grpc_port: int | None = None,
    metrics_port: int | None = None,
    host: str = DEFAULT_HOST,
    workdir: str | os.PathLike[str] | None = None,
    runtime: str = VALIDATING_RUNTIME,
    threshold: float | None = None,
    extra: Mapping[str, Any] | None = None,
    timeout: float = READY_TIMEOUT_S,
    env: Mapping[str, str] | None = None,
    record_dir: str | os.PathLike[str] | None = None,
) -> RunningServer:
    """Starts ``mlserver start`` for ``model`` and waits until the model is ready.

    The child runs in its own session (Ctrl-C in a terminal reaches only the parent, which
    then stops it) and exits when this process dies, even by ``kill -9``: it holds the read
    end of a pipe only this process can write to, and EOF on it stops the server
    (:mod:`churn_kfp.serving.launch`). On any failure the child is stopped before the error
    propagates.

    Args:
        model: The version to serve.
        http_port: REST port; default a free one.
        grpc_port: gRPC port; default a free one.
        metrics_port: Prometheus port, or ``None`` for no metrics server.
        host: Address to bind (default loopback only).
        workdir: The config and the log go to ``<workdir>/mlserver-<http_port>/``; default
            :func:`serving_dir` (``$CHURN_HOME/serving/<model name>/<version>``).
        runtime: MLServer runtime class.
        threshold: Decision threshold for the ``churn`` output; default ``model.threshold``.
        extra: More runtime settings (``parameters.extra``).
        timeout: Seconds to wait for readiness.
        env: Extra environment variables for the child.
        record_dir: Where to record the running server (``<host>-<port>.json``) for
            :func:`recorded_servers`; the record goes when it is stopped.

    Returns:
        The running server.

    Raises:
        ServerStartError: The process exited, or was not ready within ``timeout``.
    """
    http_port = int(http_port or free_port(host))
    grpc_port = int(grpc_port or _free_port_except(host, {http_port}))
    if metrics_port == 0:
        metrics_port = _free_port_except(host, {http_port, grpc_port})
    if workdir is None:
        workdir = serving_dir(Settings.from_env(), model.name, model.version)
    base = Path(workdir)
    config_dir = write_server_config(
        model,
        base / f"mlserver-{http_port}",
        http_port=http_port,
        grpc_port=grpc_port,
        metrics_port=metrics_port,
        host=host,
        runtime=runtime,
        threshold=threshold,
        extra=extra,
    )
    log_path = config_dir / "mlserver.log"
    log_file = open(log_path, "w")  # noqa: SIM115 - closed by RunningServer.stop
    child_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    apply_runtime_env(child_env)  # e.g. OMP_WAIT_POLICY=PASSIVE, as in the image
    watchdog, parent_end = os.pipe()  # both ends non-inheritable; the child gets `watchdog`
    child_env[PARENT_FD_ENV] = str(watchdog)
    started = time.monotonic()
    try:
        process = subprocess.Popen(
            mlserver_command(config_dir),
            cwd=config_dir,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=child_env,
            start_new_session=True,
            pass_fds=(watchdog,),
        )
    except BaseException:
        os.close(parent_end)
        log_file.close()
        raise
    finally:
        os.close(watchdog)
    url_host = "127.0.0.1" if host in ("0.0.0.0", "") else host
    server = RunningServer(
        model=model,
        url=f"http://{url_host}:{http_port}",
        grpc_address=f"{url_host}:{grpc_port}",
        process=process,
        config_dir=config_dir,
        log_path=log_path,
        metrics_url=f"http://{url_host}:{metrics_port}/metrics" if metrics_port else None,
        runtime=runtime,
        _log_file=log_file,
        _parent_end=parent_end,
    )
    if record_dir is not None:
        server._record = _record_server(server, Path(record_dir), host, http_port)
    try:
        wait_until_ready(server.url, model.name, timeout=timeout, process=process)
    except BaseException as exc:
        server.stop(grace_seconds=5)
        if isinstance(exc, ServerStartError):
            tail = server.log_tail()
            raise ServerStartError(f"{exc}\n--- last lines of {log_path} ---\n{tail}") from None
        raise
    server.startup_seconds = time.monotonic() - started
    return server


def _free_port_except(host: str, taken: set[int]) -> int:
    for _ in range(20):
        port = free_port(host)
        if port not in taken:
            return port
    raise OSError("could not find a free port")


@contextlib.contextmanager
def serve(model: ServedModel, *, attempts: int = 2, **kwargs: Any) -> Iterator[RunningServer]:
    """Runs MLServer for ``model`` inside a ``with`` block and always stops it afterwards.

    Takes the keyword arguments of :func:`start_server`. Free ports are picked at the last
    moment; if the server still fails to start (another process took a port in between),
    it is tried again with new ports, ``attempts`` times in all, unless ports were given.

    Yields:
        The running, ready server.
    """
    fixed_ports = bool(kwargs.get("http_port") or kwargs.get("grpc_port"))
    last_error: Exception | None = None
    server = None
    for _ in range(1 if fixed_ports else max(1, attempts)):
        try:
            server = start_server(model, **kwargs)
            break
        except ServerStartError as exc:
            last_error = exc
            if "address already in use" not in str(exc).lower():
                raise
    if server is None:
        assert last_error is not None
        raise last_error
    try:
        yield server
    finally:
        server.stop()


def wait_until_ready(
    url: str,
    model_name: str = MODEL_NAME,
    *,
    timeout: float = READY_TIMEOUT_S,
    process: subprocess.Popen | None = None,
    interval: float = 0.25,
) -> None:
    """Polls ``/v2/health/ready`` and ``/v2/models/<name>/ready`` until both answer 200.

    Raises:
        ServerStartError: ``process`` exited, or ``timeout`` seconds passed.
    """
    import requests

    deadline = time.monotonic() + timeout
    session = requests.Session()
    paths = ("/v2/health/ready", f"/v2/models/{model_name}/ready")
    while True:
        if process is not None and process.poll() is not None:
            raise ServerStartError(f"mlserver exited with code {process.returncode}")
        try:
            if all(session.get(url + path, timeout=2).status_code == 200 for path in paths):
                return
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            raise ServerStartError(f"mlserver at {url} was not ready after {timeout:.0f} s")
        time.sleep(interval)


def stop_process(process: subprocess.Popen, grace_seconds: float = 10.0) -> int | None:
    """Stops a child started in its own session: SIGTERM to its group, SIGKILL if needed.

    Returns:
        The exit code (negative: killed by that signal).
    """
    if process.poll() is not None:
        return process.returncode
    _signal_group(process, signal.SIGTERM)
    try:
        return process.wait(timeout=grace_seconds)
    except subprocess.TimeoutExpired:
        logger.warning("mlserver (pid %s) ignored SIGTERM; killing it", process.pid)
        _signal_group(process, signal.SIGKILL)
        return process.wait(timeout=30)


def _signal_group(process: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(os.getpgid(process.pid), sig)
    except (ProcessLookupError, PermissionError):
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(sig)


@dataclass(frozen=True)
class RecordedServer:
    """A model server an earlier ``churn serve`` started and recorded, still running.

    Attributes:
        pid: The server's process id.
        host: Address it binds.
        port: Its HTTP port.
        model: Model name.
        version: Model version.
        parent_pid: The ``churn serve`` process that started it.
        parent_alive: Whether that process still runs (if not, the server is stale).
        started_at: When it was started (ISO 8601).
    """

    pid: int
    host: str
    port: int
    model: str
    version: str
    parent_pid: int
    parent_alive: bool
    started_at: str

    def describe(self) -> str:
        """One line naming the server, who started it and how to stop it."""
        owner = (
            f"started by churn serve (pid {self.parent_pid}) at {self.started_at}"
            if self.parent_alive
            else f"left behind by a churn serve (pid {self.parent_pid}) that is gone, started "
            f"at {self.started_at}"
        )
        return (
            f"MLServer pid {self.pid} serving {self.model} version {self.version} on "
            f"{self.host}:{self.port}, {owner}; stop it with `kill {self.pid}`"
        )


def _record_server(server: RunningServer, record_dir: Path, host: str, port: int) -> Path:
    import datetime as dt

    record_dir.mkdir(parents=True, exist_ok=True)
    path = record_dir / f"{host}-{port}.json"
    record = {
        "pid": server.process.pid,
        "host": host,
        "port": port,
        "model": server.model.name,
        "version": server.model.version,
        "parent_pid": os.getpid(),
        "config_dir": str(server.config_dir),
        "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    path.write_text(json.dumps(record, indent=2) + "\n")
    return path


def recorded_servers(record_dir: str | os.PathLike[str]) -> list[RecordedServer]:
    """Servers recorded in ``record_dir`` that still run; records of dead ones are removed.

    A record counts only while its pid runs the recorded configuration (``/proc`` on Linux),
    so a recycled pid is not mistaken for the server.
    """
    found = []
    for path in sorted(Path(record_dir).glob("*.json")):
        try:
            record = json.loads(path.read_text())
            pid = int(record["pid"])
            command = _command_line(pid)
            running = process_alive(pid) and (command is None or record["config_dir"] in command)
        except (OSError, ValueError, KeyError, TypeError):
            running = False
        if not running:
            path.unlink(missing_ok=True)
            continue
        parent = int(record.get("parent_pid", 0))
        found.append(
            RecordedServer(
                pid=pid,
                host=str(record["host"]),
                port=int(record["port"]),
                model=str(record["model"]),
                version=str(record["version"]),
                parent_pid=parent,
                parent_alive=bool(parent) and process_alive(parent),
                started_at=str(record.get("started_at", "?")),
            )
        )
    return found


def _command_line(pid: int) -> str | None:
    """The process's command line (``/proc``), or ``None`` where that is not available."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except FileNotFoundError:
        return "" if Path("/proc/self").exists() else None
    except OSError:
        return None
