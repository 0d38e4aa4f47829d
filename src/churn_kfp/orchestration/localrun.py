"""Run the pipelines on this machine through KFP's own local runner (no cluster)."""

from __future__ import annotations

import builtins
import contextlib
import io
import logging
import os
import re
import sys
import time
import warnings
from collections import deque
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

from churn_kfp.core.config import Settings, apply_runtime_env

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_EXCEPTION_LINE = re.compile(r"^(?:[A-Za-z_][\w.]*\.)?[A-Z]\w*(?:Error|Exception)\b:\s*(.+)$")
_FAILED_TASK = re.compile(r"Inner task failed: '([^']+)'")
_TASK_DONE = re.compile(r"Task '([^']+)' finished with status (\w+)")

LOCAL_DEFAULTS = {"deploy_mode": "local", "generate": True}
"""Local runs' own defaults for the parameters whose pipeline defaults are the cluster's:
the pipelines deploy what they promote and never generate data unless asked, while on
this machine a run writes the InferenceService manifest only and makes its demo data."""


class PipelineRunError(RuntimeError):
    """A local pipeline run failed; the message names the task and the cause."""

    def __init__(
        self, pipeline: str, task: str | None, cause: str | None, log_path: Path | None = None
    ):
        self.pipeline, self.task, self.cause, self.log_path = pipeline, task, cause, log_path
        where = f"step '{task}'" if task else "a step"
        fallback = f"see the task logs in {log_path}" if log_path else "see the log above"
        super().__init__(f"pipeline '{pipeline}' failed in {where}: {cause or fallback}")


class _Tee(io.TextIOBase):
    """Writes through to a stream and keeps the last lines.

    With ``progress``, a quiet run writes one line per finished task instead of the logs.
    """

    def __init__(self, stream, keep: int, quiet: bool, progress: bool = False, log=None):
        self.stream, self.quiet, self.progress, self.log = stream, quiet, progress, log
        self.lines: deque[str] = deque(maxlen=keep)
        self._partial = ""
        self._started = time.perf_counter()

    def write(self, text: str) -> int:
        if not self.quiet:
            self.stream.write(text)
        if self.log is not None:
            self.log.write(_ANSI.sub("", text))
        self._partial += text
        *complete, self._partial = self._partial.split("\n")
        self.lines.extend(complete)
        if self.quiet and self.progress:
            for line in complete:
                if match := _TASK_DONE.search(_ANSI.sub("", line)):
                    elapsed = time.perf_counter() - self._started
                    task, status = match.groups()
                    self.stream.write(f"  [{elapsed:6.1f} s] {task}: {status.lower()}\n")
                    self.stream.flush()
        return len(text)

    def flush(self) -> None:
        self.stream.flush()


@contextlib.contextmanager
def _capture(quiet: bool, progress: bool, log_path: Path, keep: int = 2000) -> Iterator[_Tee]:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    terminal = (sys.stdout, sys.stderr)  # before stdout is redirected to the tee
    with contextlib.ExitStack() as stack:
        log = stack.enter_context(log_path.open("w", encoding="utf-8"))
        # Before the log closes, the root logger gets its own handlers back: kfp.local's
        # parallel tasks save and restore them racily and can leave one of theirs behind,
        # bound to the tee, that would write to the closed log (a "Logging error").
        stack.callback(_restore_root_logger, *_root_logger_state())
        tee = _Tee(sys.stdout, keep, quiet, progress, log)
        stack.enter_context(contextlib.redirect_stdout(tee))
        if quiet:
            # Parallel loop tasks race on kfp.local's logger set-up and some of their logs
            # reach the root logger's own handlers: quiet means those too.
            for handler in logging.getLogger().handlers:
                if isinstance(handler, logging.StreamHandler) and handler.stream in terminal:
                    stack.callback(handler.setStream, handler.setStream(tee))
        yield tee


def _root_logger_state() -> tuple[list[logging.Handler], int]:
    root = logging.getLogger()
    return root.handlers[:], root.level


def _restore_root_logger(handlers: list[logging.Handler], level: int) -> None:
    root = logging.getLogger()
    root.handlers[:] = handlers
    root.setLevel(level)


def error_from_log(lines: list[str]) -> tuple[str | None, str | None]:
    """Finds the failed task and the last exception message in a kfp.local log."""
    task = cause = None
    for raw in reversed(lines):
        line = _ANSI.sub("", raw).strip()
        if task is None and (match := _FAILED_TASK.search(line)):
            task = match.group(1)
        if cause is None and _EXCEPTION_LINE.match(line) and "finished with status" not in line:
            cause = line
        if task and cause:
            break
    return task, cause


def prepare_environment(settings: Settings) -> None:
    """Creates the local state folders and exports the settings to the task processes."""
    for path in (settings.home, settings.pipeline_root, settings.reports_dir):
        path.mkdir(parents=True, exist_ok=True)
    if not settings.landing_zone.startswith("s3://"):
        Path(settings.landing_zone).mkdir(parents=True, exist_ok=True)
    os.environ.update(
        {
            "CHURN_HOME": str(settings.home),
            "CHURN_LANDING_ZONE": settings.landing_zone,
            "MLFLOW_TRACKING_URI": settings.tracking_uri,
            "CHURN_ARTIFACT_ROOT": settings.artifact_root,
        }
    )
    apply_runtime_env()


def local_arguments(pipeline_func: Callable, arguments: dict) -> dict:
    """``arguments`` with :data:`LOCAL_DEFAULTS` for the pipeline parameters they omit."""
    spec = getattr(pipeline_func, "component_spec", None)
    parameters = set((spec.inputs or {}) if spec is not None else ())
    defaults = {k: v for k, v in LOCAL_DEFAULTS.items() if k in parameters and k not in arguments}
    return {**defaults, **arguments}


def run_locally(
    pipeline_func: Callable,
    arguments: dict,
    settings: Settings,
    quiet: bool = False,
    progress: bool = False,
) -> tuple[str | None, float]:
    """Runs a pipeline with ``kfp.local.SubprocessRunner`` in this virtualenv.

    Args:
        pipeline_func: A ``@dsl.pipeline`` function.
        arguments: Pipeline parameters; those omitted take :data:`LOCAL_DEFAULTS` first,
            then the pipeline's own defaults.
        settings: Where local state lives.
        quiet: Hide the task logs (they are still searched for the error on failure).
        progress: When quiet, print one line per finished task (time, task, status).

    Returns:
        The pipeline's return value (if any) and the elapsed seconds.

    The full task logs also go to ``settings.logs_dir/<pipeline>-<time>.log``.

    Raises:
        PipelineRunError: A step failed; the message names the step and the error.
    """
    from kfp import local

    prepare_environment(settings)
    # kfp.local warns that our image is not used locally (by design: the virtualenv stands
    # in for it) and that display names are cluster-only; neither needs the user's attention.
    warnings.filterwarnings("ignore", message="You may be attemping to run a task")
    warnings.filterwarnings("ignore", message=r"Task '.*': settings \['display_name'\]")
    local.init(
        runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(settings.pipeline_root)
    )
    name = getattr(pipeline_func, "name", getattr(pipeline_func, "__name__", "pipeline"))
    started = time.perf_counter()
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    log_path = settings.logs_dir / f"{name}-{stamp}.log"
    if quiet and progress:
        print(f"{name}: task logs in {log_path}", flush=True)
    # kfp.local swaps builtins.print for an indenting one during loops and may leave it.
    original_print = builtins.print
    with _capture(quiet, progress, log_path) as tee:
        try:
            task = pipeline_func(**local_arguments(pipeline_func, arguments))
        except RuntimeError as exc:
            lines = [*tee.lines, *str(exc).splitlines()]
            failed_task, cause = error_from_log(lines)
            raise PipelineRunError(name, failed_task, cause, log_path) from exc
        finally:
            builtins.print = original_print
    output = None
    with contextlib.suppress(Exception):  # pipelines without a return value
        output = task.output
    return output, time.perf_counter() - started
