"""Cron expressions as KFP's scheduler takes them (six fields, seconds first)."""

import pytest

from churn_kfp.orchestration import cron


@pytest.mark.parametrize(
    ("typed", "sent"),
    [
        ("0 6 1 * *", "0 0 6 1 * *"),  # monthly on the 1st at 06:00
        ("0 10 * * *", "0 0 10 * * *"),  # daily 10:00 (as 5 fields KFP would run it hourly)
        ("*/15 * * * *", "0 */15 * * * *"),
        ("30 2 * * 1-5", "0 30 2 * * 1-5"),
        ("0 0 1 JAN,JUL *", "0 0 0 1 JAN,JUL *"),
        ("0 6 * * 7", "0 0 6 * * 0"),  # crontab's Sunday=7 -> 0
        ("0 6 * * 5-7", "0 0 6 * * 5-6,0"),
        ("  0   6 1 * *  ", "0 0 6 1 * *"),
        ("@monthly", "0 0 0 1 * *"),
        ("@daily", "0 0 0 * * *"),
        ("0 0 6 1 * *", "0 0 6 1 * *"),  # six fields are taken as they are
        ("15 30 2 ? * MON-FRI", "15 30 2 ? * MON-FRI"),
    ],
)
def test_cron_is_converted_to_six_fields(typed, sent):
    assert cron.to_kfp_cron(typed) == sent
    assert len(sent.split()) == 6


@pytest.mark.parametrize(
    ("typed", "says"),
    [
        ("", "empty"),
        ("0 6 1 *", "4 fields"),
        ("0 0 6 1 * * 2027", "7 fields"),
        ("61 * * * *", "outside 0-59"),
        ("0 24 * * *", "outside 0-23"),
        ("0 6 32 * *", "outside 1-31"),
        ("0 6 1 13 *", "outside 1-12"),
        ("a b c d e", "not a number"),
        ("0 6 L * *", "L/W/#"),
        ("5-1 * * * *", "backwards"),
        ("*/0 * * * *", "positive"),
        ("* * * * * *", "every few seconds"),
        ("@every 1h", "descriptor"),
        ("0 6 ? * * *", "only allowed in day fields"),
    ],
)
def test_malformed_cron_is_rejected(typed, says):
    with pytest.raises(cron.CronError, match=says):
        cron.to_kfp_cron(typed)
