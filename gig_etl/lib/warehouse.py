"""The DuckDB warehouse: connecting under its one-writer lock, and its schema."""

from __future__ import annotations

import time
from importlib import resources
from pathlib import Path

import duckdb


class WarehouseLocked(RuntimeError):
    pass


def connect_warehouse(path: Path, lock_timeout_s: float = 300.0) -> duckdb.DuckDBPyConnection:
    """A read-write connection with the schema in place. DuckDB allows one writing
    process; while another holds the file, wait for it rather than fail."""
    path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + lock_timeout_s
    delay = 0.05
    while True:
        try:
            connection = duckdb.connect(str(path))
            break
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower() or time.monotonic() > deadline:
                raise WarehouseLocked(f"warehouse {path} is locked by another process: {exc}") from exc
            time.sleep(delay)
            delay = min(delay * 2, 2.0)
    connection.execute(sql_text("schema.sql")).fetchall()
    return connection


def sql_text(name: str) -> str:
    return resources.files("gig_etl.lib").joinpath("sql", name).read_text()
