"""The cutoff plan: grid, test/validation/training cutoffs, label gaps, spacing, round trip."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from churn_kfp.core import columns
from churn_kfp.learn.plan import (
    CutoffPlan,
    InsufficientHistoryError,
    label_gap_steps,
    parse_spacing,
    plan_cutoffs,
)

T = pd.Timestamp
DAY = pd.Timedelta(days=1)


def check_rules(plan: CutoffPlan, start: str, end: str, min_history_days: int):
    horizon = pd.Timedelta(days=plan.horizon_days)
    assert plan.test + horizon <= T(end) + DAY
    assert plan.train == sorted(plan.train)
    assert all(c < plan.validation for c in plan.train)
    for c in [*plan.train, plan.validation]:
        assert c + horizon <= plan.test
        assert c >= T(start) + pd.Timedelta(days=min_history_days)
    # validation mirrors test: no training label window reaches past the validation cutoff
    # (on a month grid, a 30-day window may end up to 2 days into a month after February)
    slack = pd.Timedelta(days=2)
    for c in plan.train:
        assert c + horizon <= plan.validation + slack


def test_plan_cdnow_like():
    plan = plan_cutoffs("1997-01-01", "1998-06-30", horizon_days=90, n_train_cutoffs=2)
    # 1998-04-01 + 90 days = 1998-06-30 <= 1998-07-01: the latest month start that fits
    assert plan.test == T("1998-04-01")
    assert plan.validation == T("1998-01-01")  # + 90 days = 1998-04-01
    # 90 days = 3 month steps: the training label windows end by the validation cutoff
    assert plan.train == [T("1997-09-01"), T("1997-10-01")]
    check_rules(plan, "1997-01-01", "1998-06-30", 30)


def test_plan_monthly_default():
    plan = plan_cutoffs("2024-01-01", "2024-12-31")
    assert plan.test == T("2024-12-01")
    assert plan.validation == T("2024-11-01")
    assert plan.train == [T("2024-08-01"), T("2024-09-01"), T("2024-10-01")]
    assert plan.all_cutoffs() == [*plan.train, plan.validation, plan.test]
    # 2024-12-01 + 30 days = 2024-12-31: data through 2024-12-30 still suffice, one day
    # less does not
    assert plan_cutoffs("2024-01-01", "2024-12-30").test == T("2024-12-01")
    assert plan_cutoffs("2024-01-01", "2024-12-29").test == T("2024-11-01")


def test_plan_spacing_days():
    plan = plan_cutoffs(
        "2024-01-01", "2024-06-29", horizon_days=28, spacing_days=14, n_train_cutoffs=3
    )
    assert plan.test == T("2024-06-02")  # 2024-06-30 - 28 days
    assert plan.validation == T("2024-05-05")  # 2 steps back: 28 days before the test
    # and 2 more steps back for training (2024-04-21 + 28 days would pass the validation)
    assert plan.train == [T("2024-03-10"), T("2024-03-24"), T("2024-04-07")]
    check_rules(plan, "2024-01-01", "2024-06-29", 30)


@pytest.mark.parametrize(
    "start,end,horizon,n,spacing_days,min_hist",
    [
        ("2023-03-15", "2024-02-10", 30, 3, None, 30),
        ("2023-01-01", "2024-12-31", 60, 5, None, 90),
        ("2023-05-05", "2023-12-24", 21, 4, 7, 14),
        ("2022-01-01", "2022-12-31", 45, 2, 10, 0),
    ],
)
def test_plan_rules_hold(start, end, horizon, n, spacing_days, min_hist):
    plan = plan_cutoffs(
        start,
        end,
        horizon_days=horizon,
        n_train_cutoffs=n,
        spacing_days=spacing_days,
        min_history_days=min_hist,
    )
    check_rules(plan, start, end, min_hist)
    assert 1 <= len(plan.train) <= n


def test_plan_explicit_test_cutoff():
    plan = plan_cutoffs("2024-01-01", "2024-12-31", test_cutoff="2024-10-01", n_train_cutoffs=1)
    assert (plan.test, plan.validation, plan.train) == (
        T("2024-10-01"),
        T("2024-09-01"),
        [T("2024-08-01")],
    )
    with pytest.raises(InsufficientHistoryError, match="not fully observed"):
        plan_cutoffs("2024-01-01", "2024-12-31", test_cutoff="2024-12-15")


def test_plan_insufficient_history_message():
    with pytest.raises(InsufficientHistoryError) as info:
        plan_cutoffs("2024-01-01", "2024-03-31", horizon_days=30)
    message = str(info.value)
    assert "2024-01-01..2024-03-31" in message
    assert "horizon 30 days" in message
    assert "a training cutoff 1 grid step(s) before it" in message
    assert isinstance(info.value, ValueError)
    with pytest.raises(InsufficientHistoryError):
        plan_cutoffs("2024-01-01", "2024-02-15", horizon_days=60)


@pytest.mark.parametrize(
    "horizon,step,steps", [(30, 30, 1), (31, 30, 2), (90, 30, 3), (28, 14, 2), (5, 7, 1)]
)
def test_label_gap_steps(horizon, step, steps):
    assert label_gap_steps(horizon, step) == steps


def test_plan_validation_gap_follows_the_horizon():
    # 60 days on a month grid: the last training cutoff is two months before validation
    plan = plan_cutoffs("2024-01-01", "2024-12-31", horizon_days=60, n_train_cutoffs=2)
    assert (plan.test, plan.validation) == (T("2024-11-01"), T("2024-09-01"))
    assert plan.train == [T("2024-06-01"), T("2024-07-01")]


@pytest.mark.parametrize(
    "text,parsed",
    [
        ("", ("MS", None)),
        ("MS", ("MS", None)),
        ("W-MON", ("W-MON", None)),
        ("QS", ("QS", None)),
        ("14d", ("MS", 14)),
        (" 7 days ", ("MS", 7)),
    ],
)
def test_parse_spacing(text, parsed):
    assert parse_spacing(text) == parsed


@pytest.mark.parametrize("text", ["fortnightly", "0d", "-3d"])
def test_parse_spacing_refuses_with_the_forms_it_takes(text):
    with pytest.raises(ValueError, match="pandas frequency .* number of days"):
        parse_spacing(text)


def test_weekly_plan_keeps_the_gaps():
    spacing, days = parse_spacing("W-MON")
    plan = plan_cutoffs(
        "2024-01-01", "2024-06-30", horizon_days=28, n_train_cutoffs=2, spacing=spacing
    )
    assert all(c.dayofweek == 0 for c in plan.all_cutoffs())
    assert plan.validation + pd.Timedelta(days=28) <= plan.test
    assert plan.train[-1] + pd.Timedelta(days=28) == plan.validation  # 4 weekly steps
    check_rules(plan, "2024-01-01", "2024-06-30", 30)


def test_plan_round_trip_and_split_of():
    plan = plan_cutoffs("1997-01-01", "1998-06-30", horizon_days=90, n_train_cutoffs=2)
    data = json.loads(json.dumps(plan.to_dict()))
    assert data == {
        "train": ["1997-09-01", "1997-10-01"],
        "validation": "1998-01-01",
        "test": "1998-04-01",
        "horizon_days": 90,
        # the other matured month starts from the first training cutoff on
        "refit": ["1997-11-01", "1997-12-01", "1998-02-01", "1998-03-01"],
        "refit_through": "1998-04-01",
    }
    assert CutoffPlan.from_dict(data) == plan
    assert plan.split_of("1997-10-01") == columns.TRAIN
    assert plan.split_of(T("1998-01-01")) == columns.VALIDATION
    assert plan.split_of("1998-04-01") == columns.TEST
    assert plan.split_of("1998-02-01") == columns.REFIT
    with pytest.raises(ValueError, match="not in the plan"):
        plan.split_of("1998-02-15")
    with pytest.raises(ValueError, match="not in the plan"):
        plan.split_of("1997-08-01")  # before the first training cutoff


def test_refit_cutoffs_reach_the_latest_matured_cutoff_after_a_forced_test_cutoff():
    plan = plan_cutoffs(
        "1997-01-01", "1998-06-30", horizon_days=90, n_train_cutoffs=2, test_cutoff="1998-03-01"
    )
    # 1998-04-01 + 90 days = 1998-06-30: matured; 1998-05-01 is not
    assert plan.refit_through == T("1998-04-01")
    assert T("1998-04-01") in plan.refit and T("1998-05-01") not in plan.refit
    cutoffs = plan.all_cutoffs()
    assert cutoffs == sorted(cutoffs) and len(set(cutoffs)) == len(cutoffs)
    month_starts = pd.date_range(plan.train[0], "1998-04-01", freq="MS")
    assert cutoffs == list(month_starts)  # every matured month start from the first on


def test_refit_through_is_the_test_cutoff_by_default():
    plan = plan_cutoffs("2024-01-01", "2024-12-31")
    assert plan.refit == [] and plan.refit_through == plan.test
    weekly = plan_cutoffs("2024-01-01", "2024-06-30", spacing_days=14)
    assert weekly.refit_through == weekly.test
    assert all(c < weekly.test for c in weekly.refit)
