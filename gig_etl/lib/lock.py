"""Locks held across processes: one per integration on its raw files and offsets.

The daemon's run queue already runs one run per integration; the lock covers what
bypasses the queue (`gig-etl run`, `gig-etl rebuild`, a second `dagster dev`).
It is an `flock` on a file: the kernel releases it when its holder dies, even by
SIGKILL, so a crash never leaves a stale lock behind.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Callable, Iterator


class IntegrationBusy(RuntimeError):
    """Another process holds the integration; the message says which and since when."""


def integration_lock(folder: Path, integration: str, purpose: str, wait_s: float) -> AbstractContextManager[None]:
    """Holds the integration's lock for the block, waiting up to `wait_s` for it."""

    def busy(holder: str) -> IntegrationBusy:
        return IntegrationBusy(
            f"integration {integration!r} is busy: {holder}; waited {wait_s:.0f}s, nothing was read "
            "(try again when it ends)"
        )

    return file_lock(folder / f"{integration}.lock", purpose, wait_s, on_timeout=busy)


class LockTimeout(RuntimeError):
    """The lock stayed held for the whole wait; the message names its holder."""


@contextmanager
def file_lock(
    path: Path, purpose: str, wait_s: float, on_timeout: Callable[[str], Exception] = LockTimeout
) -> Iterator[None]:
    """An exclusive `flock` on `path` for the block, waiting up to `wait_s` for it,
    then raising `on_timeout(<who holds it>)`. The holder writes who it is into the
    file, for the message of those who wait."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise on_timeout(_holder(path)) from None
                time.sleep(0.1)
        handle.seek(0)
        handle.truncate()
        handle.write(
            json.dumps({"pid": os.getpid(), "purpose": purpose, "since": datetime.now(UTC).isoformat(timespec="seconds")})
        )
        handle.flush()
        try:
            yield
        finally:
            handle.seek(0)
            handle.truncate()
            fcntl.flock(handle, fcntl.LOCK_UN)


def _holder(path: Path) -> str:
    try:
        holder = json.loads(path.read_text())
        return f"process {holder['pid']} has held it since {holder['since']} ({holder['purpose']})"
    except (OSError, ValueError, KeyError):
        return "another process holds it"
