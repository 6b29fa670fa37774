"""gig-etl's own small tables (the integration registry, the raw manifest, the
integrations' locks): a SQLite file under the home, or a schema of a shared
Postgres database (no Dagster imports).

The statements are written once, with `?` placeholders, in the SQL both engines
speak; a Postgres connection rewrites the placeholders to its driver's style.
"""

from __future__ import annotations

import hashlib
import os
import re
import sqlite3
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping
from urllib.parse import unquote, urlsplit

from gig_etl.lib.home import writing_under
from gig_etl.lib.identifiers import quote_identifier

# gig-etl's tables in a shared Postgres database: a schema of their own, beside
# Dagster's tables and the lake's catalog.
POSTGRES_SCHEMA = "gig_etl"
POSTGRES_CONNECT_TIMEOUT_S = 10


class StateUnavailable(RuntimeError):
    """The shared Postgres database cannot be reached or refused gig-etl; one line."""


class ConfigurationError(ValueError):
    """A setting gig-etl cannot use; the message names it and what it expects."""


@dataclass(frozen=True)
class PostgresSettings:
    """A Postgres database: where, as whom, and the *name* of the variable that
    holds the password (never the password)."""

    host: str
    port: int
    user: str
    database: str
    password_env: str | None = None

    @classmethod
    def from_url(cls, url: str, password_env: str | None, setting: str) -> PostgresSettings:
        """From `postgresql://user@host:port/database`; refuses a URL holding a password."""
        parts = urlsplit(url)
        if parts.scheme not in ("postgresql", "postgres") or not parts.hostname or not parts.path.strip("/"):
            raise ConfigurationError(f"{setting}={url!r} is not a URL such as postgresql://user@host:5432/database")
        if parts.password is not None:
            raise ConfigurationError(
                f"{setting} holds a password: remove it, and name the variable that holds it in "
                "GIG_ETL_POSTGRES_PASSWORD_ENV"
            )
        try:
            port = parts.port or 5432
        except ValueError:
            raise ConfigurationError(f"{setting}={url!r} has a port that is not a number") from None
        return cls(
            host=parts.hostname, port=port, user=unquote(parts.username or "postgres"),
            database=unquote(parts.path.strip("/")), password_env=password_env or None,
        )

    def password(self, environ: Mapping[str, str]) -> str | None:
        if self.password_env is None:
            return None
        password = environ.get(self.password_env)
        if password is None:
            raise ConfigurationError(
                f"GIG_ETL_POSTGRES_PASSWORD_ENV names {self.password_env}, which is not set"
            )
        return password

    def describe(self) -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{self.database}"

    def libpq(self) -> str:
        """The libpq connection string, without the password."""
        return f"host={self.host} port={self.port} user={self.user} dbname={self.database}"


class StateConnection:
    """One connection, with `?` placeholders on either engine."""

    def __init__(self, raw: Any, postgres: bool) -> None:
        self.raw = raw
        self.postgres = postgres

    def execute(self, sql: str, params: tuple | list = ()) -> Any:
        if not self.postgres:
            return self.raw.execute(sql, params)
        cursor = self.raw.cursor()
        cursor.execute(sql.replace("?", "%s"), tuple(params))
        return cursor

    def executemany(self, sql: str, rows: list) -> None:
        if not self.postgres:
            self.raw.executemany(sql, rows)
        elif rows:
            with self.raw.cursor() as cursor:
                cursor.executemany(sql.replace("?", "%s"), rows)


_connections = threading.local()
_created: set[tuple[str, str]] = set()


class StateDatabase:
    """Where a part of gig-etl's state lives: `sqlite_path`, or the `gig_etl`
    schema of the Postgres database `postgres`. `what` names it in errors."""

    def __init__(self, what: str, sqlite_path: Path | None = None, postgres: PostgresSettings | None = None) -> None:
        if (sqlite_path is None) == (postgres is None):
            raise ValueError("a state database is either a SQLite file or a Postgres database")
        self.what = what
        self.sqlite_path = Path(sqlite_path) if sqlite_path is not None else None
        self.postgres = postgres

    @property
    def integrity_errors(self) -> tuple[type[Exception], ...]:
        import psycopg2

        return (sqlite3.IntegrityError, psycopg2.IntegrityError)

    def describe(self) -> str:
        if self.postgres is not None:
            return f"{self.postgres.describe()} (schema {POSTGRES_SCHEMA})"
        return str(self.sqlite_path)

    def create(self, ddl: str) -> None:
        """Creates the tables of `ddl` (statements ending in `;` at a line's end) if
        missing. On Postgres under a lock, as many workers start at once, and once
        per process: each check there is a round trip."""
        statements = [s.strip() for s in re.split(r";\s*\n", ddl) if s.strip()]
        if self.postgres is None:
            assert self.sqlite_path is not None
            with writing_under(self.sqlite_path.parent, self.what):
                self.sqlite_path.parent.mkdir(parents=True, exist_ok=True)
                with self.connect() as db:
                    for statement in statements:
                        db.execute(statement)
            return
        key = (self.describe(), hashlib.sha256(ddl.encode()).hexdigest())
        if key not in _created:
            with self.transaction() as db:
                db.execute("SELECT pg_advisory_xact_lock(hashtextextended('gig-etl schema', 0))")
                db.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_identifier(POSTGRES_SCHEMA)}")
                for statement in statements:
                    db.execute(statement)
            _created.add(key)

    @contextmanager
    def connect(self) -> Iterator[StateConnection]:
        """A connection for single statements, each committed on its own."""
        if self.postgres is None:
            db = sqlite3.connect(self.sqlite_path, timeout=30, isolation_level=None)
            try:
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=FULL")
                yield StateConnection(db, postgres=False)
            finally:
                db.close()
            return
        with self._postgres_errors():
            yield StateConnection(self._postgres_connection(), postgres=True)

    @contextmanager
    def transaction(self) -> Iterator[StateConnection]:
        """A write transaction: all of it, or none."""
        with self.connect() as db:
            db.execute("BEGIN" if db.postgres else "BEGIN IMMEDIATE")
            try:
                yield db
                db.execute("COMMIT")
            except BaseException:
                try:
                    db.execute("ROLLBACK")
                except Exception:  # the connection itself is gone: nothing was committed
                    pass
                raise

    @contextmanager
    def own_connection(self) -> Iterator[StateConnection]:
        """A Postgres connection of the block's own, closed when it ends: what a
        session-level lock is held on."""
        assert self.postgres is not None
        with self._postgres_errors():
            connection = self._open_postgres()
            try:
                yield StateConnection(connection, postgres=True)
            finally:
                connection.close()

    def _open_postgres(self) -> Any:
        import psycopg2

        assert self.postgres is not None
        connection = psycopg2.connect(
            host=self.postgres.host, port=self.postgres.port, user=self.postgres.user, dbname=self.postgres.database,
            password=self.postgres.password(os.environ), connect_timeout=POSTGRES_CONNECT_TIMEOUT_S,
            options=f"-c search_path={POSTGRES_SCHEMA} -c statement_timeout=30000", application_name="gig-etl",
            keepalives=1, keepalives_idle=10, keepalives_interval=5, keepalives_count=3,
        )
        connection.autocommit = True
        return connection

    def _postgres_connection(self) -> Any:
        """This thread's connection to the database, opened on first use: a new
        connection per statement would cost a login each time."""
        cached = getattr(_connections, "by_database", None)
        if cached is None:
            cached = _connections.by_database = {}
        key = self.postgres
        connection = cached.get(key)
        if connection is not None and connection.closed == 0:
            try:  # a server restarted since drops its connections: one round trip tells
                with connection.cursor() as cursor:
                    cursor.execute("SELECT 1")
                return connection
            except Exception:
                connection.close()
        connection = cached[key] = self._open_postgres()
        return connection

    @contextmanager
    def _postgres_errors(self) -> Iterator[None]:
        import psycopg2

        try:
            yield
        except (psycopg2.OperationalError, psycopg2.InterfaceError) as exc:
            # A broken connection is dropped: the next statement logs in again.
            cached = getattr(_connections, "by_database", {})
            broken = cached.pop(self.postgres, None)
            if broken is not None:
                broken.close()
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise StateUnavailable(f"Postgres at {self.postgres.describe()} ({self.what}) is unavailable: {first}") from exc
