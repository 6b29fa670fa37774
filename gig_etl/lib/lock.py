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
import socket
import time
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Callable, Iterator

from gig_etl.lib.shard import Shard
from gig_etl.lib.state_db import StateDatabase


class IntegrationBusy(RuntimeError):
    """Another process holds the integration; the message says which and since when."""


@contextmanager
def integration_lock(
    folder: Path, integration: str, purpose: str, wait_s: float, shared: StateDatabase | None = None,
    shard: Shard | None = None,
) -> Iterator[None]:
    """Holds the integration's lock for the block, waiting up to `wait_s` for it: a
    file lock under `folder`, or with `shared` (Postgres) a lock every machine sees.
    A shard's drain holds it shared with the other shards' (each also holds its
    shard's own): they drain side by side, and a load or an unsharded drain waits
    for them all, as they wait for it."""

    def busy(holder: str) -> IntegrationBusy:
        return IntegrationBusy(
            f"integration {integration!r}{'' if shard is None else f' {shard}'} is busy: {holder}; "
            f"waited {wait_s:.0f}s, nothing was read (try again when it ends)"
        )

    def lock(name: str, shared_mode: bool) -> AbstractContextManager[None]:
        if shared is not None and shared.postgres is not None:
            return postgres_lock(shared, name, purpose, wait_s, on_timeout=busy, shared_mode=shared_mode)
        return file_lock(folder / f"{name.removeprefix('integration ')}.lock", purpose, wait_s, busy, shared_mode)

    with lock(f"integration {integration}", shared_mode=shard is not None):
        if shard is None:
            yield
        else:
            with lock(f"integration {integration}.{shard.name}", shared_mode=False):
                yield


class WarehouseBusy(RuntimeError):
    """Another process has written the lake for the whole wait; says which."""


def lake_writer_lock(
    folder: Path, purpose: str, wait_s: float, shared: StateDatabase | None = None
) -> AbstractContextManager[None]:
    """The lake's one writer at a time, on every machine of a deployment (with
    `shared`, Postgres). Integrations drain side by side and load one after
    another: loads of two integrations would each commit to the same tables, and
    an erasure's clean-up deletes files another load may still be reading."""

    def busy(holder: str) -> WarehouseBusy:
        return WarehouseBusy(f"the warehouse is busy: {holder}; waited {wait_s:.0f}s (try again when it ends)")

    if shared is not None and shared.postgres is not None:
        return postgres_lock(shared, "lake writer", purpose, wait_s, on_timeout=busy)
    return file_lock(folder / "lake-writer.lock", purpose, wait_s, busy)


class LockTimeout(RuntimeError):
    """The lock stayed held for the whole wait; the message names its holder."""


@contextmanager
def file_lock(
    path: Path, purpose: str, wait_s: float, on_timeout: Callable[[str], Exception] = LockTimeout,
    shared_mode: bool = False,
) -> Iterator[None]:
    """An exclusive (or `shared_mode`) `flock` on `path` for the block, waiting up to
    `wait_s` for it, then raising `on_timeout(<who holds it>)`. The holder writes who
    it is into the file, for the message of those who wait."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(handle, (fcntl.LOCK_SH if shared_mode else fcntl.LOCK_EX) | fcntl.LOCK_NB)
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


_HOLDERS_DDL = """
CREATE TABLE IF NOT EXISTS lock_holders (
    name      TEXT PRIMARY KEY,
    holder    TEXT NOT NULL,
    since     TEXT NOT NULL
);
"""


@contextmanager
def postgres_lock(
    state: StateDatabase, name: str, purpose: str, wait_s: float, on_timeout: Callable[[str], Exception] = LockTimeout,
    shared_mode: bool = False,
) -> Iterator[None]:
    """A Postgres advisory lock on `name` (exclusive, or `shared_mode`) for the block,
    on a connection of its own: the server releases it when that connection ends,
    the holder's death included."""
    state.create(_HOLDERS_DDL)
    mode = "_shared" if shared_mode else ""
    with state.own_connection() as db:
        deadline = time.monotonic() + wait_s
        while not db.execute(f"SELECT pg_try_advisory_lock{mode}(hashtextextended(?, 0))", (name,)).fetchone()[0]:
            if time.monotonic() >= deadline:
                row = db.execute("SELECT holder, since FROM lock_holders WHERE name = ?", (name,)).fetchone()
                raise on_timeout(f"{row[0]} has held it since {row[1]}" if row else "another process holds it")
            time.sleep(0.2)
        holder = f"process {os.getpid()} on {socket.gethostname()} ({purpose})"
        db.execute(
            "INSERT INTO lock_holders VALUES (?, ?, ?) ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, "
            "since = excluded.since", (name, holder, datetime.now(UTC).isoformat(timespec="seconds")),
        )
        try:
            yield
        finally:
            try:
                db.execute(f"SELECT pg_advisory_unlock{mode}(hashtextextended(?, 0))", (name,))
            except Exception:  # the connection is gone, and the lock with it
                pass


def _holder(path: Path) -> str:
    try:
        holder = json.loads(path.read_text())
        return f"process {holder['pid']} has held it since {holder['since']} ({holder['purpose']})"
    except (OSError, ValueError, KeyError):
        return "another process holds it"
