"""All-or-nothing changes of many landing-zone files: stage, commit, apply.

A change (an import, a generated dataset) is written in three steps:

1. its *pending record* ``staging/<id>.json`` names every file it will move, delete and
   write;
2. its new files go to ``staging/<id>/<final key>``, where no reader looks;
3. writing its *commit record* (the import manifest, or the generator's) is the one
   atomic step that commits it. Only then are the staged files moved to their keys, the
   files they replace deleted, the small metadata files written and the pending record
   removed.

Killed before step 3 (even by SIGKILL), nothing under ``raw/`` changed: readers see none
of the change, and the next writer, holding the landing-zone lock, removes what is left
(:func:`settle` with ``abandon``). Killed during the moves, the change is committed:
every reader finishes it from the pending record before listing (:func:`settle`), so it
sees all of it. Python exceptions, Ctrl-C and SIGTERM (see :func:`sigterm_as_interrupt`)
roll an uncommitted change back at once.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import uuid
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

from churn_kfp.data.landing import LandingZone

__all__ = [
    "CHANGE_ID_FIELD",
    "STAGING_PREFIX",
    "settle",
    "sigterm_as_interrupt",
    "write_change",
]

STAGING_PREFIX = "staging/"
"""Where changes are staged: pending records and the files not yet committed."""

CHANGE_ID_FIELD = "change_id"
"""The field of a commit record that names the change it commits."""


def _record_key(change_id: str) -> str:
    return f"{STAGING_PREFIX}{change_id}.json"


def _staged_key(change_id: str, key: str) -> str:
    return f"{STAGING_PREFIX}{change_id}/{key}"


def _json_bytes(data: dict[str, Any]) -> bytes:
    return (json.dumps(data, indent=2, default=str) + "\n").encode()


def write_change(
    zone: LandingZone,
    files: Iterable[tuple[str, bytes]],
    commit_key: str,
    commit_record: dict[str, Any],
    deletes: Iterable[str] = (),
    writes: dict[str, bytes] | None = None,
    on_file: Callable[[str], None] | None = None,
) -> str | None:
    """Writes files, deletes others and writes a commit record, all or nothing.

    Args:
        zone: The landing zone.
        files: ``(key, bytes)`` of every new file (it replaces a file of the same key).
        commit_key: Where the commit record goes (an import manifest, for instance).
        commit_record: Its content (JSON); ``change_id`` is added.
        deletes: Keys to delete once committed (those also written are kept).
        writes: Small files (other manifests) to write once committed.
        on_file: Called with each key once it is staged (progress).

    Returns:
        ``None``, or a warning when the change was committed but could not be finished
        (the next reader of the landing zone finishes it).

    Raises:
        BaseException: Whatever interrupted the change before its commit, after the staged
            files were removed.
    """
    change_id = uuid.uuid4().hex
    files = list(files)
    targets = {key for key, _ in files}
    pending = {
        "id": change_id,
        "commit_key": commit_key,
        "moves": [[_staged_key(change_id, key), key] for key, _ in files],
        "deletes": sorted(set(deletes) - targets - {commit_key}),
        "writes": {key: data.decode() for key, data in (writes or {}).items()},
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    staged: list[str] = []
    try:
        zone.write_bytes(_record_key(change_id), _json_bytes(pending))
        for key, data in files:
            staged_key = _staged_key(change_id, key)
            # Listed before the write: an interrupt can land after the object is stored but
            # before the call returns, and the rollback must remove that one too.
            staged.append(staged_key)
            zone.write_bytes(staged_key, data)
            if on_file is not None:
                on_file(key)
        zone.write_bytes(commit_key, _json_bytes({**commit_record, CHANGE_ID_FIELD: change_id}))
    except BaseException:
        with contextlib.suppress(Exception):  # settle() removes whatever is left
            if not _committed(zone, pending):  # interrupted just after the commit: keep it
                _roll_back(zone, pending, staged)
        raise
    try:
        _apply(zone, pending)
    except Exception as exc:
        return (
            f"committed, but moving its files into place failed ({exc}); the next reader "
            "of the landing zone finishes it"
        )
    return None


def _roll_back(zone: LandingZone, pending: dict[str, Any], staged: list[str] | None) -> None:
    keys = staged if staged is not None else [source for source, _ in pending["moves"]]
    for key in keys:
        zone.delete(key)
    zone.delete(_record_key(pending["id"]))


def _apply(zone: LandingZone, pending: dict[str, Any]) -> None:
    for source, target in pending["moves"]:
        zone.move(source, target)
    for key in pending["deletes"]:
        zone.delete(key)
    for key, text in pending["writes"].items():
        zone.write_bytes(key, text.encode())
    zone.delete(_record_key(pending["id"]))


def _committed(zone: LandingZone, pending: dict[str, Any]) -> bool:
    try:
        record = json.loads(zone.read_bytes(pending["commit_key"]))
    except (FileNotFoundError, ValueError):
        return False
    return isinstance(record, dict) and record.get(CHANGE_ID_FIELD) == pending["id"]


def settle(zone: LandingZone, abandon: bool = False) -> None:
    """Finishes committed changes; with ``abandon``, also removes uncommitted ones.

    Readers call it before they list the data: a change killed after its commit is then
    complete. Only a writer holding the landing-zone lock may pass ``abandon``: every
    uncommitted change is then one whose writer died.
    """
    keys = zone.list_keys(STAGING_PREFIX)
    if not keys:
        return
    for key in (k for k in keys if k.count("/") == 1 and k.endswith(".json")):
        try:
            pending = json.loads(zone.read_bytes(key))
        except FileNotFoundError:
            continue  # finished meanwhile
        if _committed(zone, pending):
            _apply(zone, pending)
        elif abandon:
            _roll_back(zone, pending, None)
    if abandon:  # staged files whose record is gone (a rollback cut short)
        for key in zone.list_keys(STAGING_PREFIX):
            zone.delete(key)


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Turns SIGTERM into KeyboardInterrupt (like Ctrl-C) for the block, in the main thread.

    So ``kill <pid>`` rolls back an uncommitted change and releases locks instead of
    killing the process where it stands.
    """
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
