from churn_kfp.localrun import PipelineRunError, _Tee, error_from_log


def test_error_from_log_finds_task_and_last_exception():
    lines = [
        "\x1b[36m[ingest-and-validate]\x1b[0m Traceback (most recent call last):",
        '  File "x.py", line 3, in <module>',
        "churn_kfp.validation.DataValidationError: raw/sales/x.csv: column 'timestamp': bad",
        "Pipeline 'churn-training' finished with status \x1b[91mFAILURE\x1b[0m. "
        "Inner task failed: \x1b[96m'ingest-and-validate'\x1b[0m.",
    ]
    task, cause = error_from_log(lines)
    assert task == "ingest-and-validate"
    assert cause.startswith("churn_kfp.validation.DataValidationError: raw/sales/x.csv")


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
