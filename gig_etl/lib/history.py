"""The lake's history: every commit is a snapshot an analyst can read back to
(time travel), until an erasure or maintenance takes it away.

An erasure wins over history: the snapshots that held an erased customer are
expired and the files they used rewritten or deleted, so that no Parquet file
under the lake holds the customer's id or values any more.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import duckdb
import polars as pl

from gig_etl.lib.warehouse import LAKE

# Where the lake can hold something about a customer: the tables with their
# customer_id, and quarantine, whose rows may be about them under another key.
_HOLDS_CUSTOMER = {
    "main.profiles": "customer_id IN (SELECT customer_id FROM history_erased)",
    "main.events": "customer_id IN (SELECT customer_id FROM history_erased)",
    "internal.attribute_state": "customer_id IN (SELECT customer_id FROM history_erased)",
    "main.quarantine": "customer_id IN (SELECT customer_id FROM history_erased) "
    "OR key IN (SELECT encode(customer_id) FROM history_erased)",
}


def snapshot_ids(db: duckdb.DuckDBPyConnection) -> list[int]:
    return [s for (s,) in db.execute(f"SELECT snapshot_id FROM ducklake_snapshots('{LAKE}') ORDER BY 1").fetchall()]


def _holds_any(db: duckdb.DuckDBPyConnection, snapshot: int) -> bool:
    """Whether the lake as of `snapshot` holds anything about the customers in `history_erased`."""
    for table, about in _HOLDS_CUSTOMER.items():
        try:
            [(found,)] = db.execute(
                f"SELECT EXISTS (SELECT 1 FROM {table} AT (VERSION => ?) WHERE {about})", [snapshot]
            ).fetchall()
        except duckdb.CatalogException:  # the table did not exist yet
            continue
        if found:
            return True
    return False


def _first_inserted(db: duckdb.DuckDBPyConnection, since: int, newest: int) -> int | None:
    """The first snapshot from `since` to `newest` that inserted a row about the
    customers in `history_erased`: each table's files are read once, however many
    snapshots there are. A row keeps its inserting snapshot through deletes and
    merges; a rewrite inserts it again, its old file kept while a snapshot uses it.
    Rows inserted before `since` are not counted."""
    firsts = []
    for table, about in _HOLDS_CUSTOMER.items():
        schema, name = table.split(".")
        try:
            [(first,)] = db.execute(
                f"SELECT min(snapshot_id) FROM ducklake_table_insertions('{LAKE}', ?, ?, ?, ?) WHERE {about}",
                [schema, name, since, newest],
            ).fetchall()
        except duckdb.CatalogException:  # the table does not exist yet
            continue
        if first is not None:
            firsts.append(first)
    return min(firsts, default=None)


@dataclass(frozen=True)
class Forgotten:
    snapshots_expired: int
    files_rewritten: int
    files_deleted: int


def forget_history_of(db: duckdb.DuckDBPyConnection, customers: list[str]) -> Forgotten:
    """Takes the erased `customers` out of the lake's history, once their rows are
    deleted from its current state. Files that still hold their deleted rows are
    rewritten without them; then every snapshot from the first that held them to
    the last before the rewrite is expired (those after the erasure still use
    the old files), and the files only those used are deleted."""
    db.register("history_erased", pl.DataFrame({"customer_id": customers}, schema={"customer_id": pl.String}).to_arrow())
    live = snapshot_ids(db)
    # Once a customer is held, they are held in every snapshot until their erasure:
    # from the oldest snapshot left, or from the first live one after their first row.
    if _holds_any(db, live[0]):
        first_holding = 0
    else:
        first_row = _first_inserted(db, live[0], live[-1])
        first_holding = None if first_row is None else next(i for i, s in enumerate(live) if s >= first_row)
    rewritten = sum(
        processed for (_, _, processed, _) in db.execute(
            f"CALL ducklake_rewrite_data_files('{LAKE}', delete_threshold => 0)"
        ).fetchall()
    )
    if first_holding is None:  # held by no snapshot left: nothing of theirs in history
        first_holding = len(live)
    newest = snapshot_ids(db)[-1]
    doomed = [s for s in live[first_holding:] if s != newest]
    expired = 0
    if doomed:
        expired = len(db.execute(f"CALL ducklake_expire_snapshots('{LAKE}', versions => ?)", [doomed]).fetchall())
    deleted = len(db.execute(f"CALL ducklake_cleanup_old_files('{LAKE}', cleanup_all => true)").fetchall())
    return Forgotten(expired, rewritten, deleted)


_ORPHAN_AGE = timedelta(hours=6)


@dataclass(frozen=True)
class Maintenance:
    files_merged: int
    files_created: int
    snapshots_expired: int
    files_deleted: int
    orphans_deleted: int


def maintain_lake(db: duckdb.DuckDBPyConnection, expire_before: datetime) -> Maintenance:
    """Merges small files into larger ones, expires the snapshots committed before
    `expire_before` (the newest always stays), and deletes the files no snapshot
    uses any more, and those of writes that never committed."""
    merged = db.execute(f"CALL ducklake_merge_adjacent_files('{LAKE}')").fetchall()
    expired = db.execute(f"CALL ducklake_expire_snapshots('{LAKE}', older_than => ?)", [expire_before]).fetchall()
    deleted = db.execute(f"CALL ducklake_cleanup_old_files('{LAKE}', cleanup_all => true)").fetchall()
    # Not every orphan: a writer's files are orphans until it commits.
    orphans = db.execute(
        f"CALL ducklake_delete_orphaned_files('{LAKE}', older_than => ?)", [datetime.now(UTC) - _ORPHAN_AGE]
    ).fetchall()
    return Maintenance(
        files_merged=sum(row[2] for row in merged),
        files_created=sum(row[3] for row in merged),
        snapshots_expired=len(expired),
        files_deleted=len(deleted),
        orphans_deleted=len(orphans),
    )
