"""The integration registry: GiG connections and their approval status (no Dagster imports).

An integration is kept apart from the warehouse, in a SQLite file under
$GIG_ETL_HOME or a team's shared Postgres, so the CLI, the Dagster daemon and
the UI read it while a run writes the warehouse. Only the *name* of the environment variable that
holds the password is stored; the password is read at run time.
"""

from __future__ import annotations

import enum
import os
import re
import unicodedata
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Mapping

from gig_etl.contract import PROFILE_IDENTIFIERS
from gig_etl.lib.kafka import SASL_MECHANISMS, SECURITY_PROTOCOLS, KafkaConnection
from gig_etl.lib.state_db import StateDatabase


class RegistryError(ValueError):
    """A request the registry refuses; the message says why in one line."""


class CredentialsError(RuntimeError):
    """An integration's credentials cannot be resolved."""


class IntegrationStatus(str, enum.Enum):
    AWAITING_APPROVAL = "awaiting_approval"
    APPROVED = "approved"
    REJECTED = "rejected"
    DISABLED = "disabled"


# Which status each action moves from, and to.
_TRANSITIONS = {
    "approve": ({IntegrationStatus.AWAITING_APPROVAL}, IntegrationStatus.APPROVED),
    "reject": ({IntegrationStatus.AWAITING_APPROVAL}, IntegrationStatus.REJECTED),
    "disable": ({IntegrationStatus.APPROVED}, IntegrationStatus.DISABLED),
}

# Names become Dagster partition keys and folder names: keep them plain.
_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
_TENANT = re.compile(r"[A-Za-z0-9._-]{1,200}")  # characters Kafka allows in a topic name
_SERVER = re.compile(r"[A-Za-z0-9.-]+:(\d{1,5})")
_ENV_VAR = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

EDITABLE_FIELDS = (
    "tenant_id", "bootstrap_servers", "security_protocol", "sasl_mechanism", "username", "password_env", "identifier",
)


@dataclass(frozen=True)
class Integration:
    name: str
    tenant_id: str
    bootstrap_servers: str
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    username: str | None = None
    password_env: str | None = None  # the variable's name, never the password
    identifier: str = "customer_id"
    status: IntegrationStatus = IntegrationStatus.AWAITING_APPROVAL
    created_at: str = ""
    approved_at: str | None = None
    updated_at: str = ""

    @property
    def is_readable(self) -> bool:
        return self.status is IntegrationStatus.APPROVED

    def connection(self, environ: Mapping[str, str] = os.environ) -> KafkaConnection:
        """The Kafka connection, with the password read from its variable now."""
        password = None
        if self.security_protocol.startswith("SASL"):
            password = environ.get(self.password_env or "")
            if not password:
                raise CredentialsError(
                    f"integration {self.name!r}, broker {self.bootstrap_servers}: the environment variable "
                    f"{self.password_env} that holds its password is {'not set' if password is None else 'empty'}"
                )
        return KafkaConnection(
            bootstrap_servers=self.bootstrap_servers,
            security_protocol=self.security_protocol,
            sasl_mechanism=self.sasl_mechanism,
            username=self.username,
            password=password,
        )


def _control_characters(integration: Integration) -> str | None:
    """The first setting holding a control character (a trailing newline pasted in,
    a NUL), which no name, tenant, server or variable name may hold."""
    for setting in ("name", *EDITABLE_FIELDS):
        value = getattr(integration, setting)
        if isinstance(value, str) and any(unicodedata.category(c) == "Cc" for c in value):
            return setting
    return None


def validate(integration: Integration) -> None:
    """Raises RegistryError naming the first thing wrong with `integration`. Every
    pattern must match the whole value (`fullmatch`: `$` would let a trailing
    newline through)."""
    setting = _control_characters(integration)
    if setting is not None:
        raise RegistryError(
            f"the {setting.replace('_', ' ')} {getattr(integration, setting)!r} holds a control character "
            "(a newline, a tab, a NUL): remove it"
        )
    if not _NAME.fullmatch(integration.name):
        raise RegistryError(
            f"invalid name {integration.name!r}: use 1-63 lower-case letters, digits, '-' or '_', "
            "starting with a letter or digit"
        )
    if not integration.tenant_id.strip():
        raise RegistryError("the tenant ID is empty")
    if not _TENANT.fullmatch(integration.tenant_id):
        raise RegistryError(f"invalid tenant ID {integration.tenant_id!r}: use letters, digits, '.', '_' or '-'")
    servers = integration.bootstrap_servers.split(",")
    for server in servers:
        match = _SERVER.fullmatch(server.strip(" "))
        if not match or not 0 < int(match.group(1)) < 65536:
            raise RegistryError(
                f"malformed bootstrap servers {integration.bootstrap_servers!r}: expected host:port[,host:port...]"
            )
    if integration.security_protocol not in SECURITY_PROTOCOLS:
        raise RegistryError(
            f"unknown security protocol {integration.security_protocol!r}: one of {', '.join(SECURITY_PROTOCOLS)}"
        )
    if integration.identifier not in PROFILE_IDENTIFIERS:
        raise RegistryError(
            f"unknown identifier {integration.identifier!r}: one of {', '.join(PROFILE_IDENTIFIERS)}"
        )
    if integration.security_protocol.startswith("SASL"):
        if integration.sasl_mechanism not in SASL_MECHANISMS:
            raise RegistryError(
                f"{integration.security_protocol} needs a SASL mechanism: one of {', '.join(SASL_MECHANISMS)}"
            )
        if not integration.username:
            raise RegistryError(f"{integration.security_protocol} needs a username")
        if not integration.password_env or not _ENV_VAR.fullmatch(integration.password_env):
            raise RegistryError(
                f"{integration.security_protocol} needs --password-env: the name of the environment variable "
                "that holds the password"
            )
    elif integration.sasl_mechanism or integration.username or integration.password_env:
        raise RegistryError("a SASL mechanism, username or password variable needs a SASL security protocol")


_DDL = """
CREATE TABLE IF NOT EXISTS integrations (
    name              TEXT PRIMARY KEY,
    tenant_id         TEXT NOT NULL,
    bootstrap_servers TEXT NOT NULL,
    security_protocol TEXT NOT NULL,
    sasl_mechanism    TEXT,
    username          TEXT,
    password_env      TEXT,
    identifier        TEXT NOT NULL,
    status            TEXT NOT NULL,
    created_at        TEXT NOT NULL,
    approved_at       TEXT,
    updated_at        TEXT NOT NULL
)
"""
_COLUMNS = [f for f in Integration.__dataclass_fields__]


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class IntegrationRegistry:
    """The integrations, in a SQLite file at `path`, or in the shared database `state`."""

    def __init__(self, path: Path | None = None, state: StateDatabase | None = None) -> None:
        self.state = state or StateDatabase("the integration registry", sqlite_path=path)
        self.path = self.state.sqlite_path
        self.state.create(_DDL)

    def _write(self, integration: Integration, insert: bool) -> None:
        row = {k: (v.value if isinstance(v, enum.Enum) else v) for k, v in asdict(integration).items()}
        with self.state.connect() as db:
            if insert:
                try:
                    db.execute(
                        f"INSERT INTO integrations ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})",
                        [row[c] for c in _COLUMNS],
                    )
                except self.state.integrity_errors:
                    raise RegistryError(f"an integration named {integration.name!r} exists already") from None
            else:
                db.execute(
                    f"UPDATE integrations SET {', '.join(f'{c} = ?' for c in _COLUMNS[1:])} WHERE name = ?",
                    [row[c] for c in _COLUMNS[1:]] + [integration.name],
                )

    def create(self, name: str, tenant_id: str, bootstrap_servers: str, **settings: str | None) -> Integration:
        now = _now()
        integration = Integration(
            name=name, tenant_id=tenant_id, bootstrap_servers=bootstrap_servers,
            **{k: v for k, v in settings.items() if v is not None}, created_at=now, updated_at=now,
        )
        validate(integration)
        self._write(integration, insert=True)
        return integration

    def get(self, name: str) -> Integration:
        with self.state.connect() as db:
            row = db.execute(f"SELECT {', '.join(_COLUMNS)} FROM integrations WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise RegistryError(f"unknown integration {name!r}: `gig-etl integrations list` shows the known ones")
        return self._from_row(row)

    def list(self) -> list[Integration]:
        with self.state.connect() as db:
            rows = db.execute(f"SELECT {', '.join(_COLUMNS)} FROM integrations ORDER BY name").fetchall()
        return [self._from_row(row) for row in rows]

    @staticmethod
    def _from_row(row: tuple) -> Integration:
        values = dict(zip(_COLUMNS, row))
        return Integration(**values | {"status": IntegrationStatus(values["status"])})

    def edit(self, name: str, **changes: str | None) -> Integration:
        current = self.get(name)
        if current.status in (IntegrationStatus.APPROVED, IntegrationStatus.DISABLED):
            raise RegistryError(
                f"integration {name!r} is {current.status.value} and can no longer be edited: "
                "create a new integration for the changed connection"
            )
        unknown = set(changes) - set(EDITABLE_FIELDS)
        if unknown:
            raise RegistryError(f"cannot edit {', '.join(sorted(unknown))}")
        # An edited connection needs a fresh approval.
        edited = replace(
            current, **changes, status=IntegrationStatus.AWAITING_APPROVAL, updated_at=_now()
        )
        validate(edited)
        self._write(edited, insert=False)
        return edited

    def _move(self, name: str, action: str) -> Integration:
        allowed_from, to = _TRANSITIONS[action]
        current = self.get(name)
        if current.status not in allowed_from:
            raise RegistryError(
                f"cannot {action} integration {name!r}: it is {current.status.value}, and only "
                f"{' or '.join(sorted(s.value for s in allowed_from))} integrations can be {to.value}"
            )
        now = _now()
        moved = replace(current, status=to, updated_at=now, approved_at=now if action == "approve" else current.approved_at)
        self._write(moved, insert=False)
        return moved

    def approve(self, name: str) -> Integration:
        return self._move(name, "approve")

    def reject(self, name: str) -> Integration:
        return self._move(name, "reject")

    def disable(self, name: str) -> Integration:
        return self._move(name, "disable")


def registry_path(home: Path) -> Path:
    return home / "registry.sqlite"
