"""The warehouse: a DuckLake, that is a catalog database plus a folder of Parquet
files, opened through DuckDB with extensions loaded from their PyPI wheels.

Every commit is a snapshot: readers see the last one committed when their query
began, and neither waits for the other. Analysts' tables and views are in the
lake's `main` schema, gig-etl's own state in `internal`.
"""

from __future__ import annotations

import os
import re
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Iterator

import duckdb

from gig_etl.contract import PROFILE_ATTRIBUTES, AttributeType
from gig_etl.lib.file_area import EnvironmentValue, ObjectStore
from gig_etl.lib.identifiers import ATTRIBUTE_PREFIX, EXTRA_ATTRIBUTES, quote_identifier, string_literal
from gig_etl.lib.lock import postgres_lock
from gig_etl.lib.state_db import PostgresSettings, StateDatabase

# The lake as gig-etl's own connections attach it.
LAKE = "lake"
ANALYST_SCHEMA = "main"
INTERNAL_SCHEMA = "internal"
# The tables of each schema that hold integrations' rows.
ANALYST_TABLES = ("profiles", "subscriptions", "events", "event_catalog", "attribute_catalog", "quarantine")
INTEGRATION_STATE = ("seen_messages", "attribute_state", "loaded_batches", "raw_erasure_positions")

# DuckDB caches table blocks up to 80% of RAM by default; a cap keeps a load's
# memory flat as the warehouse grows (it spills to disk past it).
DEFAULT_MEMORY_LIMIT = "256MB"

# Bumped whenever schema.sql, views.sql or comments.sql change what a lake holds:
# a lake made at another version has them applied again, in one commit.
SCHEMA_VERSION = 3

_MEMORY_LIMIT = re.compile(r"\d+(\.\d+)?\s?(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)")

# Column types by their name in the catalog (the types attribute values load as):
# DDL takes a type from this table only, never the catalog's text.
_COLUMN_TYPES = {
    **{t.duckdb_type: t.duckdb_type for t in AttributeType},
    **{t: t for t in ("VARCHAR", "BOOLEAN", "BIGINT", "DOUBLE", "JSON")},
}
EXTRA_ATTRIBUTES_TYPE = "MAP(VARCHAR, VARCHAR)"

SQLITE_BUSY_TIMEOUT_MS = 30_000
# The lake's catalog tables in a shared Postgres database: a schema of their own.
LAKE_CATALOG_SCHEMA = "gig_etl_lake"

# Never fetched from the internet: each extension is a file in its PyPI wheel,
# installed with gig-etl, as trusted as the DuckDB it came with. Checking its
# signature would hash each file again on every new connection.
EXTENSION_SETTINGS = {
    "autoinstall_known_extensions": False, "autoload_known_extensions": False, "allow_unsigned_extensions": True,
}


class WarehouseUnavailable(RuntimeError):
    """The lake cannot be opened: a catalog or data path that is wrong or unreachable."""


class WarehouseNeedsRebuild(RuntimeError):
    """The home holds a warehouse file of an earlier gig-etl, which this DuckDB cannot read."""


@dataclass(frozen=True)
class Lake:
    """Where a DuckLake is. `catalog` is DuckLake's metadata database, such as
    `sqlite:/path/catalog.sqlite` or `postgres:dbname=gig host=...`; `data_path`
    is where its Parquet files go (a folder or an `s3://` URL). Readers need only
    the catalog: it knows the data path."""

    catalog: str
    data_path: str | None = None
    # The embedded lake moves with its home folder: its data path is the home's,
    # wherever the catalog first put it.
    follows_home: bool = False
    # A team's shared servers: the catalog's Postgres (its password from the variable
    # it names) and the S3 store of the data path (its keys likewise).
    postgres: PostgresSettings | None = field(default=None, compare=False)
    object_store: ObjectStore | None = field(default=None, compare=False)

    def catalog_description(self) -> str:
        """The catalog, without a password (it is never in the catalog string)."""
        return f"{self.postgres.describe()} (schema {LAKE_CATALOG_SCHEMA})" if self.postgres else self.catalog

    def describe(self) -> str:
        """The catalog, and the S3 store of the files if they are there: a failure
        to reach either names it."""
        where = self.catalog_description()
        if self.object_store is not None:
            where += f", its files in the S3 store {self.data_path} at {self.object_store.endpoint or 'AWS'}"
        return where

    def extensions(self) -> list[str]:
        """The DuckDB extensions this lake needs, in load order."""
        needed = ["ducklake"]
        if self.catalog.startswith("sqlite:"):
            needed.append("sqlite_scanner")
        elif self.catalog.startswith("postgres:"):
            needed.append("postgres")
        if self.data_path and self.data_path.startswith(("s3://", "http://", "https://", "gs://")):
            needed.append("httpfs")
        return needed

    def local_folders(self) -> list[Path]:
        """The folders to create before the lake is opened for writing."""
        folders = []
        if self.catalog.startswith("sqlite:"):
            folders.append(Path(self.catalog.removeprefix("sqlite:")).parent)
        if self.data_path and "://" not in self.data_path:
            folders.append(Path(self.data_path))
        return folders


def embedded_lake(home: Path) -> Lake:
    """The default lake, under the home: a SQLite catalog and a local data folder."""
    return Lake(
        catalog=f"sqlite:{home / 'lake' / 'catalog.sqlite'}", data_path=f"{home / 'lake' / 'data'}/", follows_home=True
    )


def legacy_warehouse_file(home: Path) -> Path:
    """The single-file warehouse of gig-etl before the lake (DuckDB 2.0 storage)."""
    return home / "warehouse.duckdb"


# An extension's file must be named after the extension inside it, which for one
# wheel is not the wheel's name: DuckDB finds its entry point by the file's name.
_EXTENSION_INSIDE = {"postgres": "postgres_scanner"}


def extension_file(name: str) -> Path:
    """An extension's file in its wheel, `duckdb-extension-<name>`, for this DuckDB
    (for a wheel whose file is misnamed, a link to it under the right name)."""
    package = resources.files(f"duckdb_extension_{name}")
    shipped = Path(str(package)) / "extensions" / f"v{duckdb.__version__}" / f"{name}.duckdb_extension"
    inside = _EXTENSION_INSIDE.get(name)
    if inside is None:
        return shipped
    link = Path(tempfile.gettempdir()) / f"gig-etl-duckdb-{duckdb.__version__}-{os.getuid()}" / f"{inside}.duckdb_extension"
    if not link.exists() or link.resolve() != shipped.resolve():
        link.parent.mkdir(parents=True, exist_ok=True)
        temporary = link.with_name(f"{link.name}.{os.getpid()}")
        temporary.unlink(missing_ok=True)
        temporary.symlink_to(shipped)
        os.replace(temporary, link)  # atomic: processes starting together never see half a link
    return link


def load_extensions(connection: duckdb.DuckDBPyConnection, names: list[str]) -> None:
    """LOADs each extension from its wheel's file. Not `duckdb_extensions.
    import_extension`, which INSTALLs it into ~/.duckdb first: a LOAD by path
    leaves nothing behind and needs no writable home."""
    for name in names:
        connection.execute(f"LOAD {string_literal(str(extension_file(name)))}").fetchall()


def open_lake(
    lake: Lake, *, read_only: bool = False, snapshot: int | None = None, memory_limit: str = DEFAULT_MEMORY_LIMIT,
    alias: str = LAKE,
) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with the lake attached as `alias` and in use. A reader
    may ask for the lake as of an earlier snapshot (its version number)."""
    connection = duckdb.connect(config=dict(EXTENSION_SETTINGS))
    try:
        attach_lake(connection, lake, read_only=read_only, snapshot=snapshot, memory_limit=memory_limit, alias=alias)
    except BaseException:
        connection.close()
        raise
    return connection


def attach_lake(
    connection: duckdb.DuckDBPyConnection, lake: Lake, *, read_only: bool = False, snapshot: int | None = None,
    memory_limit: str = DEFAULT_MEMORY_LIMIT, alias: str = LAKE, use: bool = True,
) -> None:
    """Loads the lake's extensions into `connection` and attaches the lake (and,
    with `use`, makes it the connection's default)."""
    if not _MEMORY_LIMIT.fullmatch(memory_limit):
        raise ValueError(f"memory limit {memory_limit!r} is not a size such as 256MB or 2GB")
    if not read_only:
        for folder in lake.local_folders():
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise WarehouseUnavailable(f"cannot make the lake's folder {folder}: {exc.strerror or exc}") from exc
    elif lake.catalog.startswith("sqlite:") and not Path(lake.catalog.removeprefix("sqlite:")).exists():
        raise WarehouseUnavailable(f"there is no lake at {lake.catalog} yet: the first run (or `make demo`) makes it")
    for setting, value in EXTENSION_SETTINGS.items():
        if setting != "allow_unsigned_extensions":  # only ever set before the connection starts
            connection.execute(f"SET {setting} = {str(value).lower()}").fetchall()
    connection.execute(f"SET memory_limit = {string_literal(memory_limit)}").fetchall()
    connection.execute("SET TimeZone = 'UTC'").fetchall()
    # DuckLake writes a join's key range into its catalog query as text, and a
    # value with a NUL in it (a name or an id GiG sent) breaks that query.
    connection.execute("SET disabled_optimizers = 'join_filter_pushdown'").fetchall()
    load_extensions(connection, lake.extensions())
    # Every insert is written as Parquet, never kept in the catalog's own tables
    # (DuckLake's inlining), so that an erasure has only files to rewrite.
    options = ["READ_ONLY"] if read_only else ["DATA_INLINING_ROW_LIMIT 0"]
    # A reader takes the catalog's data path, unless the lake moves with its home.
    if lake.data_path and (lake.follows_home or not read_only):
        options.append(f"DATA_PATH {string_literal(lake.data_path)}")
        if lake.follows_home:
            options.append("OVERRIDE_DATA_PATH TRUE")
    if snapshot is not None:
        options.append(f"SNAPSHOT_VERSION {int(snapshot)}")
    options += _server_secrets(connection, lake)
    if lake.catalog.startswith("sqlite:"):
        # WAL, else a reader's open transaction holds off every commit ("database
        # is locked"); and a writer waits for another's commit rather than fail.
        options += ["META_JOURNAL_MODE 'WAL'", f"META_BUSY_TIMEOUT {SQLITE_BUSY_TIMEOUT_MS}"]
    try:
        with _first_of_many_writers(lake, read_only):
            connection.execute(
                f"ATTACH {string_literal('ducklake:' + lake.catalog)} AS {quote_identifier(alias)} ({', '.join(options)})"
            ).fetchall()
    except duckdb.Error as exc:
        raise WarehouseUnavailable(f"cannot open the lake {lake.describe()}: {_first_line(exc)}") from exc
    if use:
        connection.execute(f"USE {quote_identifier(alias)}").fetchall()


@contextmanager
def _first_of_many_writers(lake: Lake, read_only: bool) -> Iterator[None]:
    """On a Postgres catalog, one writer at a time attaches: the first to find no
    lake creates its schema and tables, which several at once would collide on."""
    if lake.postgres is None or read_only:
        yield
        return
    shared = StateDatabase("the lake's catalog", postgres=lake.postgres)
    with postgres_lock(shared, "lake attach", "attaching the lake", wait_s=120):
        with shared.connect() as db:
            db.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_identifier(LAKE_CATALOG_SCHEMA)}")
        yield


def secret_statements(lake: Lake, in_cli: bool = False) -> tuple[list[str], list[str]]:
    """The CREATE SECRET statements for the lake's servers, and the ATTACH options
    that use them. A password or key is read from the variable holding it: now, or
    `in_cli`, by the DuckDB CLI's `getenv` when it runs them (so no printed
    statement holds a secret)."""

    def value(setting: str | EnvironmentValue) -> str:
        if not isinstance(setting, EnvironmentValue):
            return string_literal(setting)
        if in_cli:
            return f"getenv({string_literal(setting.variable)})"
        found = os.environ.get(setting.variable)
        if found is None:
            raise WarehouseUnavailable(f"the variable {setting.variable}, which holds a secret of the lake, is not set")
        return string_literal(found)

    def secret(name: str, kind: str, settings: dict[str, str | EnvironmentValue]) -> str:
        listed = "".join(f", {key} {value(setting)}" for key, setting in settings.items())
        return f"CREATE OR REPLACE TEMPORARY SECRET {name} (TYPE {kind}{listed});"

    statements, options = [], []
    if lake.object_store is not None:
        statements.append(secret(
            "gig_etl_object_store", "s3", {"SCOPE": f"s3://{lake.object_store.bucket}"} | lake.object_store.duckdb_secret()
        ))
    if lake.postgres is not None:
        settings: dict[str, str | EnvironmentValue] = {
            "HOST": lake.postgres.host, "PORT": str(lake.postgres.port), "USER": lake.postgres.user,
            "DATABASE": lake.postgres.database,
        }
        if lake.postgres.password_env:
            settings["PASSWORD"] = EnvironmentValue(lake.postgres.password_env)
        statements.append(secret("gig_etl_catalog", "postgres", settings))
        options += ["META_SECRET 'gig_etl_catalog'", f"METADATA_SCHEMA {string_literal(LAKE_CATALOG_SCHEMA)}"]
    return statements, options


def _server_secrets(connection: duckdb.DuckDBPyConnection, lake: Lake) -> list[str]:
    """Creates this connection's secrets for the lake's servers; returns the ATTACH
    options using them."""
    statements, options = secret_statements(lake)
    for statement in statements:
        connection.execute(statement).fetchall()
    return options


def connect_warehouse(
    lake: Lake, memory_limit: str = DEFAULT_MEMORY_LIMIT, legacy_file: Path | None = None
) -> duckdb.DuckDBPyConnection:
    """A writing connection with the schema in place (see `prepare_for_writing`)."""
    connection = open_lake(lake, memory_limit=memory_limit)
    try:
        prepare_for_writing(connection, legacy_file)
    except BaseException:
        connection.close()
        raise
    return connection


def prepare_for_writing(connection: duckdb.DuckDBPyConnection, legacy_file: Path | None = None) -> None:
    """Makes the lake attached to `connection` ready for gig-etl to write: its
    schema, the connection's macros and search path. `legacy_file`: where an older
    gig-etl kept its warehouse; while it is there, the lake is not filled behind
    the user's back (`gig-etl rebuild` makes it from raw)."""
    refuse_legacy(legacy_file)
    _macros(connection)
    if _schema_version(connection) != SCHEMA_VERSION:
        _apply_schema(connection)
    # gig-etl's SQL names its tables unqualified, analysts' and its own alike.
    connection.execute(f"SET search_path = '{LAKE}.{ANALYST_SCHEMA},{LAKE}.{INTERNAL_SCHEMA}'").fetchall()


@contextmanager
def transaction(db: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """All or nothing: a failure inside rolls every write back. Reads inside see
    one snapshot, whatever other writers commit meanwhile."""
    db.execute("BEGIN TRANSACTION").fetchall()
    try:
        yield
        db.execute("COMMIT").fetchall()
    except BaseException:
        try:
            db.execute("ROLLBACK").fetchall()
        except duckdb.TransactionException:
            pass  # a COMMIT that failed (disk full) has ended the transaction already
        raise


def refuse_legacy(legacy_file: Path | None) -> None:
    """Raises WarehouseNeedsRebuild while an older gig-etl's warehouse file is there."""
    if legacy_file is not None and legacy_file.exists():
        raise WarehouseNeedsRebuild(
            f"{legacy_file} is the warehouse of an earlier gig-etl, which this version cannot read: "
            "run `gig-etl rebuild` to make the lake from raw Parquet"
        )


def _macros(connection: duckdb.DuckDBPyConnection) -> None:
    """The connection's own macros (temporary: the lake keeps only data)."""
    connection.execute(sql_text("macros.sql")).fetchall()
    connection.execute(sql_text("erasure.sql")).fetchall()


def _schema_version(connection: duckdb.DuckDBPyConnection) -> int | None:
    if not _has_table(connection, INTERNAL_SCHEMA, "lake_schema"):
        return None
    [(version,)] = connection.execute("SELECT max(version) FROM internal.lake_schema").fetchall()
    return version


def _apply_schema(connection: duckdb.DuckDBPyConnection) -> None:
    """Creates the lake's tables, views and comments in one commit. Two processes
    making a new lake at once: the one whose commit conflicts finds it made."""
    try:
        connection.execute("BEGIN TRANSACTION").fetchall()
        connection.execute(sql_text("schema.sql")).fetchall()
        connection.execute(profiles_ddl()).fetchall()
        connection.execute(sql_text("views.sql")).fetchall()
        connection.execute(sql_text("comments.sql")).fetchall()
        for spec in PROFILE_ATTRIBUTES.values():
            _comment_attribute_column(connection, spec.column)
        connection.execute("DELETE FROM internal.lake_schema").fetchall()
        connection.execute("INSERT INTO internal.lake_schema VALUES (?)", [SCHEMA_VERSION]).fetchall()
        connection.execute("COMMIT").fetchall()
    except duckdb.TransactionException:
        try:
            connection.execute("ROLLBACK").fetchall()
        except duckdb.TransactionException:
            pass  # a COMMIT that conflicted (a Postgres catalog) has ended it already
        if _schema_version(connection) != SCHEMA_VERSION:
            raise


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [""])[0]


def _has_table(connection: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    [(found,)] = connection.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database() "
        "AND schema_name = ? AND table_name = ?",
        [schema, table],
    ).fetchall()
    return found > 0


def profiles_ddl() -> str:
    """`profiles`: one row per (integration, profile), a typed column per GiG
    attribute; attributes first seen in data add columns (`sync_profile_columns`)."""
    columns = ",\n    ".join(f"{spec.column} {spec.type.duckdb_type}" for spec in PROFILE_ATTRIBUTES.values())
    return f"""CREATE TABLE IF NOT EXISTS main.profiles (
    integration VARCHAR NOT NULL,
    profile_id  VARCHAR NOT NULL,
    customer_id VARCHAR NOT NULL,
    {columns},
    {EXTRA_ATTRIBUTES} {EXTRA_ATTRIBUTES_TYPE},
    updated_at  TIMESTAMPTZ NOT NULL
)"""


def profile_columns(connection: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """The gig_ columns of `profiles` and their DuckDB types."""
    rows = connection.execute(
        "SELECT column_name, data_type FROM duckdb_columns() WHERE database_name = current_database() "
        "AND schema_name = 'main' AND table_name = 'profiles' AND starts_with(column_name, ?)",
        [ATTRIBUTE_PREFIX],
    ).fetchall()
    return dict(rows)


def sync_profile_columns(connection: duckdb.DuckDBPyConnection) -> list[str]:
    """Gives `profiles` a column, with its comment, for every attribute catalogued
    with one; a column whose attribute is typed differently by two integrations
    becomes VARCHAR."""
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
        quoted = quote_identifier(column)
        if column not in existing:
            connection.execute(f"ALTER TABLE profiles ADD COLUMN {quoted} {_COLUMN_TYPES[data_type]}").fetchall()
            changed.append(column)
        elif data_type == "VARCHAR" and existing[column] != "VARCHAR":
            # A lake changes a column's type only to a wider one: the column is
            # made again as text, with its values.
            widened = quote_identifier("column_being_widened")
            connection.execute(f"ALTER TABLE profiles ADD COLUMN {widened} VARCHAR").fetchall()
            connection.execute(f"UPDATE profiles SET {widened} = CAST({quoted} AS VARCHAR)").fetchall()
            connection.execute(f"ALTER TABLE profiles DROP COLUMN {quoted}").fetchall()
            connection.execute(f"ALTER TABLE profiles RENAME COLUMN {widened} TO {quoted}").fetchall()
            changed.append(column)
        else:
            continue
        _comment_attribute_column(connection, column)
    return changed


def _comment_attribute_column(connection: duckdb.DuckDBPyConnection, column: str) -> None:
    comment = f"GiG profile attribute {column.removeprefix(ATTRIBUTE_PREFIX)} (attribute_catalog has its type and first sighting)."
    connection.execute(f"COMMENT ON COLUMN main.profiles.{quote_identifier(column)} IS {string_literal(comment)}").fetchall()


def sql_text(name: str) -> str:
    return resources.files("gig_etl.lib").joinpath("sql", name).read_text()
