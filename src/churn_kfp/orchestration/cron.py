"""Cron expressions for KFP recurring runs: the usual 5 fields in, KFP's 6 fields out.

KFP parses cron with seconds first (robfig/cron), so the usual ``0 10 * * *`` would fire
hourly (kubeflow/pipelines#5014, #2318). :func:`to_kfp_cron` converts 5-field expressions
and rejects malformed ones, naming the field, before anything is sent.
"""

from __future__ import annotations

import re

__all__ = ["CRON_HELP", "CronError", "to_kfp_cron"]


class CronError(ValueError):
    """A cron expression KFP would reject or misread."""


_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_WEEKDAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
_FIELDS = (  # (name, low, high, names) of KFP's six fields, seconds first (robfig/cron)
    ("seconds", 0, 59, None),
    ("minutes", 0, 59, None),
    ("hours", 0, 23, None),
    ("day of month", 1, 31, None),
    ("month", 1, 12, _MONTHS),
    ("day of week", 0, 6, _WEEKDAYS),
)
_DESCRIPTORS = {
    "@yearly": "0 0 0 1 1 *",
    "@annually": "0 0 0 1 1 *",
    "@monthly": "0 0 0 1 * *",
    "@weekly": "0 0 0 * * 0",
    "@daily": "0 0 0 * * *",
    "@midnight": "0 0 0 * * *",
    "@hourly": "0 0 * * * *",
}
CRON_HELP = (
    "use the usual 5 fields 'minute hour day-of-month month day-of-week' (e.g. '0 6 1 * *' "
    "= 06:00 on the 1st of every month), KFP's 6 fields with seconds first "
    "('0 0 6 1 * *'), or @monthly/@weekly/@daily/@hourly"
)


def to_kfp_cron(expression: str) -> str:
    """Converts a cron expression to the six-field form KFP expects (seconds first).

    Five fields (the usual crontab form) get ``0`` seconds prepended; a day-of-week ``7``
    (Sunday in crontab) becomes ``0``, which is all KFP's parser accepts. Six fields are
    validated and returned unchanged. ``@monthly``-style descriptors are expanded.

    Args:
        expression: The cron expression a user typed.

    Returns:
        The six-field expression to send to KFP.

    Raises:
        CronError: The expression is malformed, has out-of-range values, uses syntax KFP
            does not support (``L``, ``W``, ``#``, a year field), or would fire every second.
    """
    text = " ".join((expression or "").split())
    if not text:
        raise CronError(f"empty cron expression: {CRON_HELP}")
    if text.startswith("@"):
        if text.lower() in _DESCRIPTORS:
            return _DESCRIPTORS[text.lower()]
        raise CronError(f"unsupported cron descriptor {text!r}: {CRON_HELP}")
    fields = text.split(" ")
    if len(fields) == 5:
        fields[4] = _crontab_sunday(fields[4], text)
        fields = ["0", *fields]
    elif len(fields) == 7:
        raise CronError(
            f"cron {text!r} has 7 fields: a Quartz-style year field is not supported by KFP; "
            f"{CRON_HELP}"
        )
    elif len(fields) != 6:
        raise CronError(f"cron {text!r} has {len(fields)} fields: {CRON_HELP}")
    for value, spec in zip(fields, _FIELDS, strict=True):
        _check_field(value, spec, text)
    if fields[0] in ("*", "?") or fields[0].startswith("*/"):
        raise CronError(
            f"cron {text!r}: seconds field {fields[0]!r} would start runs every few seconds; "
            f"{CRON_HELP}"
        )
    return " ".join(fields)


def _crontab_sunday(dow: str, text: str) -> str:
    """Maps crontab's Sunday-as-7 to 0 (KFP's parser takes 0-6 only)."""
    items = []
    for item in dow.split(","):
        if item == "7":
            items.append("0")
        elif re.fullmatch(r"[0-6]-7", item):
            low = int(item[0])
            items.append("0" if low == 7 else f"{low}-6,0" if low < 6 else "6,0")
        elif re.search(r"(^|-)7(/|$)", item):
            raise CronError(
                f"cron {text!r}: day of week {item!r} uses 7 for Sunday inside a step; "
                "KFP takes 0-6 (0 = Sunday)"
            )
        else:
            items.append(item)
    return ",".join(items)


def _check_field(value: str, spec: tuple, text: str) -> None:
    name, low, high, names = spec

    def number(token: str) -> int:
        if names and token.upper() in names:
            return names.index(token.upper()) + low
        if not token.isdigit():
            raise CronError(
                f"cron {text!r}: {name} {value!r} is not valid ({token!r} is not a number"
                + (f" or one of {'/'.join(names)}" if names else "")
                + f"); {CRON_HELP}"
            )
        number_ = int(token)
        if not low <= number_ <= high:
            raise CronError(f"cron {text!r}: {name} {number_} is outside {low}-{high}")
        return number_

    if not value:
        raise CronError(f"cron {text!r}: empty {name} field")
    for item in value.split(","):
        residue = item.upper()
        for known in names or ():
            residue = residue.replace(known, "")
        if re.search(r"[LW#]", residue):
            raise CronError(
                f"cron {text!r}: {name} {item!r} uses L/W/# which KFP's cron does not support"
            )
        base, _, step = item.partition("/")
        if step and (not step.isdigit() or int(step) == 0):
            raise CronError(f"cron {text!r}: {name} step {step!r} must be a positive number")
        if base in ("*", "?"):
            if base == "?" and name not in ("day of month", "day of week"):
                raise CronError(f"cron {text!r}: '?' is only allowed in day fields")
            continue
        first, dash, last = base.partition("-")
        start = number(first)
        if dash and number(last) < start:
            raise CronError(f"cron {text!r}: {name} range {base!r} goes backwards")
