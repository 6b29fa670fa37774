"""The DuckDB warehouse: connecting under its one-writer lock, and its schema."""

from __future__ import annotations

import re
import time
from importlib import resources
from pathlib import Path

import duckdb

from gig_etl.contract import PROFILE_ATTRIBUTES, AttributeType
from gig_etl.lib.identifiers import ATTRIBUTE_PREFIX, EXTRA_ATTRIBUTES, quote_identifier


class WarehouseLocked(RuntimeError):
    pass


# DuckDB caches table blocks up to 80% of RAM by default; a cap keeps a load's
# memory flat as the warehouse grows (it spills to disk past it).
DEFAULT_MEMORY_LIMIT = "256MB"

# Rows per row group of what this connection writes. A commit that checkpoints
# rewrites, compressed, every row group it appended to: with DuckDB's default of
# 122,880 each batch of a load rewrote up to that many rows of each table it grew,
# again at every batch. At 16,384 the commits of a 1M load take 1.5 s instead of
# 7.5 s (25 s -> 20 s in all); analysts' queries scan ~10 % slower. The file does
# not keep the setting: every writing connection attaches with it.
ROW_GROUP_SIZE = 16_384


_MEMORY_LIMIT = re.compile(r"\d+(\.\d+)?\s?(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)")

# Column types by their name in the catalog (the types attribute values load as):
# DDL takes a type from this table only, never the catalog's text.
_COLUMN_TYPES = {
    **{t.duckdb_type: t.duckdb_type for t in AttributeType},
    **{t: t for t in ("VARCHAR", "BOOLEAN", "BIGINT", "DOUBLE", "JSON")},
}
EXTRA_ATTRIBUTES_TYPE = "MAP(VARCHAR, VARCHAR)"


def connect_warehouse(
    path: Path, lock_timeout_s: float = 300.0, memory_limit: str = DEFAULT_MEMORY_LIMIT
) -> duckdb.DuckDBPyConnection:
    """A read-write connection with the schema in place. DuckDB allows one writing
    process; while another holds the file, wait for it rather than fail."""
    path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + lock_timeout_s
    delay = 0.05
    while True:
        try:
            connection = _attach(path)
            break
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower() or time.monotonic() > deadline:
                raise WarehouseLocked(f"warehouse {path} is locked by another process: {exc}") from exc
            time.sleep(delay)
            delay = min(delay * 2, 2.0)
    connection.execute("SET TimeZone = 'UTC'").fetchall()
    if not _MEMORY_LIMIT.fullmatch(memory_limit):
        raise ValueError(f"memory limit {memory_limit!r} is not a size such as 256MB or 2GB")
    connection.execute(f"SET memory_limit = '{memory_limit}'").fetchall()
    # Older warehouses, in one transaction: a table whose shape changed is set
    # aside, made anew by schema.sql, and refilled from what was set aside.
    upgrades = [(table, refill) for table, (needed, refill) in _UPGRADES.items() if needed(connection)]
    unnamed_quarantine = _has_table(connection, "quarantine") and not _has_column(connection, "quarantine", "customer_id")
    if upgrades:
        connection.execute("BEGIN TRANSACTION").fetchall()
        for table, _ in upgrades:
            connection.execute(
                f"ALTER TABLE {quote_identifier(table)} RENAME TO {quote_identifier(table + '_before_upgrade')}"
            ).fetchall()
    connection.execute(sql_text("schema.sql")).fetchall()
    connection.execute(sql_text("erasure.sql")).fetchall()
    if unnamed_quarantine:  # made before quarantine kept the customer a value names
        connection.execute(
            "UPDATE quarantine SET customer_id = value_customer_id(raw_value) WHERE raw_value IS NOT NULL"
        ).fetchall()
    if upgrades:
        for table, refill in upgrades:
            connection.execute(
                f"INSERT INTO {quote_identifier(table)} {refill} FROM {quote_identifier(table + '_before_upgrade')}"
            ).fetchall()
            connection.execute(f"DROP TABLE {quote_identifier(table + '_before_upgrade')}").fetchall()
        connection.execute("COMMIT").fetchall()
    connection.execute(profiles_ddl()).fetchall()
    connection.execute(sql_text("views.sql")).fetchall()
    return connection


def _attach(path: Path) -> duckdb.DuckDBPyConnection:
    """The warehouse as the connection's default database; ATTACH, not
    duckdb.connect(path), since only ATTACH takes a row group size."""
    connection = duckdb.connect()
    try:
        connection.execute(f"ATTACH ? AS warehouse (ROW_GROUP_SIZE {ROW_GROUP_SIZE})", [str(path)]).fetchall()
        connection.execute("USE warehouse").fetchall()
    except BaseException:
        connection.close()
        raise
    return connection


def _has_column(connection: duckdb.DuckDBPyConnection, table: str, column: str) -> bool:
    [(found,)] = connection.execute(
        "SELECT count(*) FROM duckdb_columns() WHERE database_name = current_database() "
        "AND table_name = ? AND column_name = ?",
        [table, column],
    ).fetchall()
    return found > 0


def _has_table(connection: duckdb.DuckDBPyConnection, table: str) -> bool:
    [(found,)] = connection.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database() AND table_name = ?", [table]
    ).fetchall()
    return found > 0


def _seen_ids_as_text(connection: duckdb.DuckDBPyConnection) -> bool:
    """Whether the warehouse, written by an older gig-etl, keeps seen message ids
    as text rather than hashed."""
    return _has_column(connection, "seen_messages", "message_id")


def _subscriptions_keyed(connection: duckdb.DuckDBPyConnection) -> bool:
    """Whether `subscriptions` has the primary key older gig-etl versions gave it."""
    [(found,)] = connection.execute(
        "SELECT count(*) FROM duckdb_constraints() WHERE database_name = current_database() "
        "AND table_name = 'subscriptions' AND constraint_type = 'PRIMARY KEY'"
    ).fetchall()
    return found > 0


# Per table an older gig-etl made differently: whether this warehouse has the old
# shape, and the SELECT list that refills the new table from the old one.
_UPGRADES = {
    "seen_messages": (_seen_ids_as_text, "SELECT integration, message_id_hash(message_id)"),
    "subscriptions": (_subscriptions_keyed, "SELECT *"),
}


def profiles_ddl() -> str:
    """`profiles`: one row per (integration, profile), a typed column per GiG
    attribute; attributes first seen in data add columns (`add_profile_columns`)."""
    columns = ",\n    ".join(f"{spec.column} {spec.type.duckdb_type}" for spec in PROFILE_ATTRIBUTES.values())
    return f"""CREATE TABLE IF NOT EXISTS profiles (
    integration VARCHAR NOT NULL,
    profile_id  VARCHAR NOT NULL,
    customer_id VARCHAR NOT NULL,
    {columns},
    {EXTRA_ATTRIBUTES} {EXTRA_ATTRIBUTES_TYPE},
    updated_at  TIMESTAMPTZ NOT NULL
);
ALTER TABLE profiles ADD COLUMN IF NOT EXISTS {EXTRA_ATTRIBUTES} {EXTRA_ATTRIBUTES_TYPE}"""


def profile_columns(connection: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """The gig_ columns of `profiles` and their DuckDB types."""
    rows = connection.execute(
        "SELECT column_name, data_type FROM duckdb_columns() WHERE database_name = current_database() "
        "AND table_name = 'profiles' AND starts_with(column_name, ?)",
        [ATTRIBUTE_PREFIX],
    ).fetchall()
    return dict(rows)


def sync_profile_columns(connection: duckdb.DuckDBPyConnection) -> list[str]:
    """Gives `profiles` a column for every attribute catalogued with one; a column
    whose attribute is typed differently by two integrations becomes VARCHAR."""
    wanted = dict(
        connection.execute(
            "SELECT column_name, CASE WHEN count(DISTINCT data_type) = 1 THEN any_value(data_type) ELSE 'VARCHAR' END "
            "FROM attribute_catalog WHERE column_name <> ? GROUP BY column_name",
            [EXTRA_ATTRIBUTES],
        ).fetchall()
    )
    existing = profile_columns(connection)
    changed = []
    for column, data_type in sorted(wanted.items()):
        if column not in existing:
            connection.execute(
                f"ALTER TABLE profiles ADD COLUMN {quote_identifier(column)} {_COLUMN_TYPES[data_type]}"
            ).fetchall()
            changed.append(column)
        elif data_type == "VARCHAR" and existing[column] != "VARCHAR":
            connection.execute(f"ALTER TABLE profiles ALTER {quote_identifier(column)} TYPE VARCHAR").fetchall()
            changed.append(column)
    return changed


def sql_text(name: str) -> str:
    return resources.files("gig_etl.lib").joinpath("sql", name).read_text()
