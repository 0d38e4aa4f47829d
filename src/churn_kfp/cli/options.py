"""Command-line options of the protocol parameters, built from :class:`Protocol`'s fields.

A command chooses which parameters it offers, in which argument group and with which
defaults (:data:`~churn_kfp.core.protocol.PROTOCOL` or another profile); the flag, type and
help text come from the parameter's declaration in :mod:`churn_kfp.core.protocol`.
"""

from __future__ import annotations

import argparse
import dataclasses
import typing
from collections.abc import Iterable
from typing import Any

from churn_kfp.core.protocol import Protocol, option_of

__all__ = ["add_protocol_options", "protocol_from_args"]


def _cutoff_spacing(value: str) -> str:
    """Checks a ``--cutoff-spacing`` before any pipeline starts."""
    from churn_kfp.learn.plan import parse_spacing

    try:
        parse_spacing(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return value


def _windows(value: str) -> str:
    """Checks ``--windows``: comma-separated whole numbers of days, each at least 1."""
    parts = [part.strip() for part in value.split(",")]
    if not all(part.isdigit() and int(part) > 0 for part in parts):
        raise argparse.ArgumentTypeError(
            f"expected comma-separated whole numbers of days such as 30,60,90, got {value!r}"
        )
    return ",".join(str(int(part)) for part in parts)


# Parameters whose value is checked while parsing (the other ones take their field's type).
_CHECKS = {"cutoff_spacing": _cutoff_spacing, "windows": _windows}


def add_protocol_options(
    group: argparse._ActionsContainer,
    command: str,
    names: Iterable[str],
    defaults: Protocol,
) -> None:
    """Adds the options of the protocol parameters ``names`` to a parser or argument group.

    Args:
        group: Where the options go (a parser or one of its argument groups).
        command: The command, for the help texts it words its own way.
        names: Protocol parameters, in the order ``--help`` lists them.
        defaults: The command's defaults.
    """
    types = typing.get_type_hints(Protocol)
    for name in names:
        option = option_of(name)
        help_text = option.help_for(command)
        if option.negated:
            group.add_argument(option.flag, action="store_true", help=help_text)
            continue
        extra: dict[str, Any] = {}
        if name in _CHECKS:
            extra["type"] = _CHECKS[name]
        elif not option.listed and types[name] is not str:
            extra["type"] = types[name]
        default = option.cli_default(getattr(defaults, name))
        group.add_argument(option.flag, default=default, help=help_text, **extra)


def protocol_from_args(args: argparse.Namespace, defaults: Protocol) -> Protocol:
    """The protocol of a parsed command line: its options over the command's defaults."""
    given = {}
    for item in dataclasses.fields(Protocol):
        option = option_of(item.name)
        if not hasattr(args, option.dest):
            continue  # the command does not offer this parameter
        value = getattr(args, option.dest)
        if option.negated and not value:
            continue  # the --no-... switch was not given: the default stands
        given[item.name] = option.from_cli(value)
    return dataclasses.replace(defaults, **given)
