"""``python -m churn_kfp.serving.launch start <folder>``: ``mlserver start`` with request limits.

MLServer 1.7.1 has no setting for the largest HTTP request body, so this launcher adds
:class:`~churn_kfp.serving.limits.BodyLimitMiddleware` to the REST app MLServer builds, then
runs MLServer's own command line unchanged. ``churn serve`` starts the server this way; on
KServe, use it as the container command (``docs/serving.md``).

The MLServer settings every server of ours runs with, whatever starts it (``churn serve``
writes them into ``settings.json``, the KServe ServingRuntime lists them as environment
variables, and this launcher sets them as defaults), are :data:`SERVER_SETTINGS`.

With :data:`PARENT_FD_ENV` set (by :func:`churn_kfp.serving.server.start_server`), the server
also dies with the process that started it: that variable names the read end of a pipe whose
only write end the parent holds, and EOF on it (the parent stopped or was killed, even by
``kill -9``) ends this process.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import MutableMapping
from typing import Any

from churn_kfp.serving.limits import BodyLimitMiddleware, RequestLimits

SERVER_SETTINGS: dict[str, Any] = {
    # MLServer's default (true) writes an access-log line per request.
    "debug": False,
    # Predict in the server process: with mlserver 1.7.1 here worker processes die ("no
    # current event loop"), and handing a 1-row request to a worker costs more than scoring it.
    "parallel_workers": 0,
}
"""MLServer settings (``mlserver.settings.Settings`` fields) of every server we start."""


def server_env() -> dict[str, str]:
    """:data:`SERVER_SETTINGS` as MLServer's environment variables (``MLSERVER_DEBUG``...)."""
    return {
        f"MLSERVER_{key.upper()}": str(value).lower() if isinstance(value, bool) else str(value)
        for key, value in SERVER_SETTINGS.items()
    }


def apply_server_settings(environ: MutableMapping[str, str] | None = None) -> None:
    """Sets :func:`server_env` in ``environ`` (``os.environ``) where not set already."""
    env = os.environ if environ is None else environ
    for key, value in server_env().items():
        env.setdefault(key, value)


def install_body_limit(limits: RequestLimits) -> None:
    """Makes every REST app MLServer creates in this process refuse oversized bodies."""
    import mlserver.rest.server as rest_server

    create_app = rest_server.create_app
    if getattr(create_app, "churn_body_limit", None) is not None:
        return

    def limited_create_app(*args: Any, **kwargs: Any) -> Any:
        app = create_app(*args, **kwargs)
        app.add_middleware(BodyLimitMiddleware, max_body_bytes=limits.max_body_bytes)
        return app

    limited_create_app.churn_body_limit = limits.max_body_bytes  # type: ignore[attr-defined]
    rest_server.create_app = limited_create_app


PARENT_FD_ENV = "CHURN_SERVE_PARENT_FD"
"""Environment variable naming the watchdog pipe's read end (see the module docstring)."""


def exit_when_parent_dies(fd: int) -> threading.Thread:
    """Ends this process as soon as ``fd`` (a pipe only the parent writes to) reaches EOF."""

    def watch() -> None:
        while os.read(fd, 1):
            pass
        print("churn serve is gone: stopping the model server", file=sys.stderr, flush=True)
        os._exit(1)  # no graceful shutdown to wait for: nobody will stop us otherwise

    thread = threading.Thread(target=watch, name="parent-watchdog", daemon=True)
    thread.start()
    return thread


def main(argv: list[str] | None = None) -> None:
    """Runs MLServer's CLI (``start <folder>`` and the rest) with the body limit installed."""
    from mlserver.cli.main import main as mlserver_main

    try:
        limits = RequestLimits.from_env()
    except ValueError as exc:
        sys.exit(f"error: {exc}")
    install_body_limit(limits)
    apply_server_settings()
    parent_fd = os.environ.pop(PARENT_FD_ENV, "")
    if parent_fd.isdigit():
        exit_when_parent_dies(int(parent_fd))
    sys.argv = ["mlserver", *(sys.argv[1:] if argv is None else argv)]
    mlserver_main()


if __name__ == "__main__":
    main()
