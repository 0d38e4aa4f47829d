"""One writer at a time per landing zone: :func:`landing_zone_lock`.

``churn run`` (for the whole run: generation, ingestion, training), ``churn import`` and
the synthetic generator take it. On a local disk it is an ``flock`` on
``<landing zone>/.lock-landing-zone``, which the kernel releases when the holder dies,
even by SIGKILL. In S3 it is the object ``locks/landing-zone.json``, created with a
conditional PUT; a holder that died on this machine is detected by its pid, one on
another machine must be removed by hand (the message says which object).

The lock is re-entrant along a process tree: the holder exports its id in
:data:`LOCK_ENV`, and a child (a pipeline step) that finds its id in the lock goes ahead.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from churn_kfp.core.processes import process_alive
from churn_kfp.data.landing import LandingZone, LandingZoneBusy, PreconditionFailed

__all__ = ["LOCAL_LOCK_FILE", "LOCK_ENV", "S3_LOCK_KEY", "landing_zone_lock"]

LOCK_ENV = "CHURN_LANDING_ZONE_LOCK"
"""The id of the landing-zone lock this process (or its parent) holds."""

LOCAL_LOCK_FILE = ".lock-landing-zone"
S3_LOCK_KEY = "locks/landing-zone.json"


def _holder(purpose: str) -> dict[str, Any]:
    return {
        "id": uuid.uuid4().hex,
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "purpose": purpose,
        "since": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def _busy(zone: LandingZone, holder: dict[str, Any], extra: str = "") -> LandingZoneBusy:
    who = (
        f"{holder.get('purpose', 'another churn process')} (pid {holder.get('pid', '?')} on "
        f"{holder.get('host', '?')}, since {holder.get('since', '?')})"
    )
    return LandingZoneBusy(
        f"landing zone {zone.uri} is busy: {who} holds its lock. Wait for it to finish, or "
        f"work on another landing zone (--landing-zone or CHURN_LANDING_ZONE){extra}"
    )


def _parse(data: bytes) -> dict[str, Any]:
    try:
        holder = json.loads(data or b"{}")
    except ValueError:
        return {}
    return holder if isinstance(holder, dict) else {}


def _nested(current: dict[str, Any]) -> bool:
    """Whether the lock's holder is this process or its parent (the id it exported)."""
    return bool(current.get("id")) and current.get("id") == os.environ.get(LOCK_ENV)


@contextlib.contextmanager
def _exported(lock_id: str) -> Iterator[None]:
    previous = os.environ.get(LOCK_ENV)
    os.environ[LOCK_ENV] = lock_id
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(LOCK_ENV, None)
        else:
            os.environ[LOCK_ENV] = previous


@contextlib.contextmanager
def landing_zone_lock(zone: LandingZone, purpose: str) -> Iterator[None]:
    """Holds the landing zone's writer lock for the block.

    Args:
        zone: The landing zone.
        purpose: What holds it, for the message others get (``churn run``...).

    Raises:
        LandingZoneBusy: Another process holds it; the message names it (pid, host, since).
    """
    from churn_kfp.data.storage import LocalLandingZone

    if isinstance(zone, LocalLandingZone):
        with _local_lock(zone, purpose):
            yield
    else:
        with _object_lock(zone, purpose):
            yield


@contextlib.contextmanager
def _local_lock(zone: Any, purpose: str) -> Iterator[None]:
    zone.root.mkdir(parents=True, exist_ok=True)
    path = zone.root / LOCAL_LOCK_FILE
    with open(path, "a+b") as handle:
        current: dict[str, Any] | None = None
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            current = _parse(handle.read())
        if current is not None:
            if not _nested(current):
                raise _busy(zone, current)
            yield
            return
        holder = _holder(purpose)
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps(holder).encode())
        handle.flush()
        try:
            with _exported(holder["id"]):
                yield
        finally:
            handle.truncate(0)
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.contextmanager
def _object_lock(zone: LandingZone, purpose: str) -> Iterator[None]:
    holder = _holder(purpose)
    data = json.dumps(holder).encode()
    acquired = False
    try:
        zone.write_conditional(S3_LOCK_KEY, data, None)
    except PreconditionFailed:
        found = zone.read_versioned(S3_LOCK_KEY)
    else:
        found = None
        acquired = True
    if not acquired:
        current, tag = (_parse(found[0]), found[1]) if found else ({}, None)
        if _nested(current):
            yield
            return
        pid = current.get("pid")
        stale = found is None or (
            current.get("host") == socket.gethostname()
            and isinstance(pid, int)
            and not process_alive(pid)
        )
        if not stale:
            hint = f"; if that process is gone, delete {zone.uri}/{S3_LOCK_KEY}"
            raise _busy(zone, current, hint)
        try:  # its holder died on this machine (or it vanished): take it over
            zone.write_conditional(S3_LOCK_KEY, data, tag)
        except PreconditionFailed:
            raise _busy(zone, current) from None
    try:
        with _exported(holder["id"]):
            yield
    finally:
        found = zone.read_versioned(S3_LOCK_KEY)
        if found is not None and _parse(found[0]).get("id") == holder["id"]:
            zone.delete(S3_LOCK_KEY)
