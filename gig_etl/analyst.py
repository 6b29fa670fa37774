"""Reading the warehouse as an analyst does: read-only, at the newest snapshot or
an earlier one, from Python or from the DuckDB CLI (`gig-etl sql`)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import duckdb

from gig_etl.lib.identifiers import quote_identifier, string_literal
from gig_etl.lib.warehouse import Lake, WarehouseUnavailable, extension_file, open_lake, secret_statements

# The lake's name in an analyst's session: `gig.main.profiles`, or `profiles` once in use.
ANALYST_ALIAS = "gig"


class NoSuchSnapshot(ValueError):
    """An --as-of that names no snapshot the lake still has."""


def resolve_snapshot(lake: Lake, as_of: str) -> int:
    """The snapshot an `--as-of` names: a snapshot number, or a time (ISO 8601, UTC
    unless it says otherwise), meaning the last snapshot committed by then."""
    with open_lake(lake, read_only=True, alias=ANALYST_ALIAS) as db:
        oldest, newest = db.execute(
            f"SELECT min(snapshot_id), max(snapshot_id) FROM ducklake_snapshots({string_literal(ANALYST_ALIAS)})"
        ).fetchall()[0]
        if as_of.isdigit():
            version = int(as_of)
        else:
            try:
                moment = datetime.fromisoformat(as_of.replace("Z", "+00:00"))
            except ValueError:
                raise NoSuchSnapshot(
                    f"--as-of {as_of!r} is neither a snapshot number nor a time such as 2026-11-30T18:00"
                ) from None
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
            [(version,)] = db.execute(
                f"SELECT max(snapshot_id) FROM ducklake_snapshots({string_literal(ANALYST_ALIAS)}) WHERE snapshot_time <= ?",
                [moment],
            ).fetchall()
            if version is None:
                raise NoSuchSnapshot(f"the lake has no snapshot as old as {as_of} (its oldest is number {oldest})")
    if not oldest <= version <= newest:
        raise NoSuchSnapshot(f"the lake has snapshots {oldest} to {newest}, not {version}")
    return version


def open_for_analysis(lake: Lake, snapshot: int | None = None) -> duckdb.DuckDBPyConnection:
    """A read-only connection to the lake (as of `snapshot`, else the newest)."""
    try:
        return open_lake(lake, read_only=True, snapshot=snapshot, alias=ANALYST_ALIAS)
    except WarehouseUnavailable as exc:
        if snapshot is not None and "snapshot" in str(exc).lower():
            raise NoSuchSnapshot(f"snapshot {snapshot} is no longer in the lake (expired)") from exc
        raise


def attach_statements(lake: Lake, snapshot: int | None = None) -> list[str]:
    """The SQL that opens the lake read-only in any DuckDB 1.5.5 session (the CLI,
    a notebook): the extensions from their wheels, the ATTACH, the USE."""
    secrets, secret_options = secret_statements(lake, in_cli=True)
    options = ", ".join(
        ["READ_ONLY", *([f"SNAPSHOT_VERSION {int(snapshot)}"] if snapshot is not None else []), *secret_options]
    )
    return [
        "SET autoinstall_known_extensions = false;",
        "SET TimeZone = 'UTC';",
        *(f"LOAD {string_literal(str(extension_file(name)))};" for name in lake.extensions()),
        *secrets,
        f"ATTACH {string_literal('ducklake:' + lake.catalog)} AS {quote_identifier(ANALYST_ALIAS)} ({options});",
        f"USE {quote_identifier(ANALYST_ALIAS)};",
    ]


def shell_command(lake: Lake, snapshot: int | None = None) -> list[str]:
    """The DuckDB CLI (the duckdb-cli wheel's binary) with the lake attached
    read-only and in use, as an interactive shell."""
    import duckdb_cli

    binary = Path(duckdb_cli.__file__).parent / "duckdb"
    return [str(binary), "-cmd", " ".join(attach_statements(lake, snapshot))]
