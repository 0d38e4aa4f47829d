import pytest

from churn_kfp.loop.failpoints import FAIL_AT_ENV, fail_if_requested


def test_test_hook_raises_only_for_its_step(monkeypatch):
    monkeypatch.setenv(FAIL_AT_ENV, "finalize-period")
    fail_if_requested("score-and-monitor")
    with pytest.raises(RuntimeError, match="injected failure"):
        fail_if_requested("finalize-period")
