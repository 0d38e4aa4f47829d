import logging

import pytest

from churn_kfp.orchestration.localrun import PipelineRunError, _Tee, error_from_log


def test_error_from_log_finds_task_and_last_exception():
    lines = [
        "\x1b[36m[ingest-and-validate]\x1b[0m Traceback (most recent call last):",
        '  File "x.py", line 3, in <module>',
        "churn_kfp.data.validation.DataValidationError: raw/sales/x.csv: column 'timestamp': bad",
        "Pipeline 'churn-training' finished with status \x1b[91mFAILURE\x1b[0m. "
        "Inner task failed: \x1b[96m'ingest-and-validate'\x1b[0m.",
    ]
    task, cause = error_from_log(lines)
    assert task == "ingest-and-validate"
    assert cause.startswith("churn_kfp.data.validation.DataValidationError: raw/sales/x.csv")


def test_error_from_log_without_exception_line():
    assert error_from_log(["all good", "nothing failed"]) == (None, None)


def test_pipeline_run_error_message_names_step_and_cause():
    err = PipelineRunError("churn-training", "label-churn", "ValueError: too short")
    assert "label-churn" in str(err) and "too short" in str(err)


def test_tee_keeps_complete_lines_and_can_be_quiet(capsys):
    import sys

    tee = _Tee(sys.stdout, keep=2, quiet=True)
    tee.write("a\nb\nc")
    tee.write("d\n")
    assert list(tee.lines) == ["b", "cd"]
    assert capsys.readouterr().out == ""


def test_quiet_tee_with_progress_prints_one_line_per_finished_task(capsys):
    import io
    import sys

    log = io.StringIO()
    tee = _Tee(sys.stdout, keep=10, quiet=True, progress=True, log=log)
    tee.write("12:00:00.000 - INFO - Executing task \x1b[96m'label-churn'\x1b[0m\n")
    tee.write("some task output\n")
    tee.write("12:00:01.000 - INFO - Task \x1b[96m'label-churn'\x1b[0m finished with status ")
    tee.write("\x1b[92mSUCCESS\x1b[0m\n")
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1 and out[0].endswith("] label-churn: success")
    assert "some task output" in log.getvalue() and "\x1b[" not in log.getvalue()


def test_failure_without_a_cause_points_at_the_task_logs(tmp_path):
    err = PipelineRunError("churn-training", None, None, tmp_path / "run.log")
    assert f"see the task logs in {tmp_path / 'run.log'}" in str(err)


@pytest.mark.pipeline
def test_parallel_tasks_leave_no_logger_writing_to_the_closed_task_log(
    tmp_path, capfd, monkeypatch
):
    """kfp.local's parallel tasks swap the root logger's handlers racily; run_locally gives
    the root logger its own handlers back (mutation: without that, one bound to the closed
    task log is left and the next log record prints "--- Logging error ---")."""
    from kfp import dsl

    from churn_kfp.core.config import Settings
    from churn_kfp.orchestration.localrun import run_locally

    @dsl.component(base_image="python:3.11")
    def echo(item: int) -> int:
        print("item", item)
        return item

    @dsl.pipeline(name="parallel-echo")
    def parallel_echo():
        with dsl.ParallelFor([1, 2, 3, 4]) as item:
            echo(item=item)

    root = logging.getLogger()
    before = root.handlers[:], root.level
    settings = Settings.from_env({"CHURN_HOME": str(tmp_path / "home")})
    for name in ("CHURN_HOME", "CHURN_LANDING_ZONE", "MLFLOW_TRACKING_URI", "CHURN_ARTIFACT_ROOT"):
        monkeypatch.setenv(name, "")  # run_locally exports these; given back after the test
    for _ in range(2):  # the second run logs through whatever the first one left
        run_locally(parallel_echo, {}, settings, quiet=True)
        assert (root.handlers, root.level) == before
        logging.getLogger("churn_kfp.test").warning("after the run")
    assert "Logging error" not in capfd.readouterr().err
