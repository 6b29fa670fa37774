"""What a run reports of an integration's tables once it has loaded: their rows,
their columns, and the facts the asset checks judge, all read from one snapshot
(another integration's load may commit meanwhile)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import duckdb

from gig_etl.lib.catalog import attributes_crowded_out
from gig_etl.lib.identifiers import quote_identifier
from gig_etl.lib.warehouse import ANALYST_SCHEMA, LAKE, transaction


@dataclass(frozen=True)
class Column:
    name: str
    data_type: str
    comment: str | None
    nullable: bool


@dataclass(frozen=True)
class TableReport:
    rows: dict[str, int]  # per table, the integration's
    columns: dict[str, list[Column]]  # per table, in order
    crowded_out: list[str]  # attributes kept in extra_attributes for want of a column
    newest_event: datetime | None  # not dated past now and the clock skew
    future_events: int
    newest_future_event: datetime | None
    duplicated_profiles: list[tuple[str, int]]  # profile_id, rows
    uncatalogued_types: list[str]  # event types in events missing from event_catalog


def read_table_report(
    db: duckdb.DuckDBPyConnection, integration: str, tables: list[str], clock_skew: timedelta
) -> TableReport:
    with transaction(db):
        rows = {
            table: db.execute(
                f"SELECT count(*) FROM {quote_identifier(table)} WHERE integration = ?", [integration]
            ).fetchall()[0][0]
            for table in tables
        }
        columns: dict[str, list[Column]] = {table: [] for table in tables}
        for table, *column in db.execute(
            "SELECT table_name, column_name, data_type, comment, is_nullable FROM duckdb_columns() "
            "WHERE database_name = ? AND schema_name = ? AND list_contains(?, table_name) ORDER BY column_index",
            [LAKE, ANALYST_SCHEMA, tables],
        ).fetchall():
            columns[table].append(Column(*column))
        [(newest, future, newest_future)] = db.execute(
            "SELECT max(occurred_at) FILTER (occurred_at <= now() + ?), count(*) FILTER (occurred_at > now() + ?), "
            "max(occurred_at) FILTER (occurred_at > now() + ?) FROM events WHERE integration = ?",
            [clock_skew, clock_skew, clock_skew, integration],
        ).fetchall()
        duplicated = db.execute(
            "SELECT profile_id, count(*) FROM profiles WHERE integration = ? GROUP BY profile_id HAVING count(*) > 1 "
            "ORDER BY 2 DESC, 1",
            [integration],
        ).fetchall()
        uncatalogued = [
            t for (t,) in db.execute(
                "SELECT DISTINCT event_type FROM events WHERE integration = ? AND event_type NOT IN "
                "(SELECT event_type FROM event_catalog WHERE integration = ?) ORDER BY 1",
                [integration, integration],
            ).fetchall()
        ]
        return TableReport(
            rows, columns, attributes_crowded_out(db, integration), newest, future, newest_future, duplicated,
            uncatalogued,
        )
