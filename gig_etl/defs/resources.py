"""The external systems gig-etl talks to, as Dagster resources.

Every path defaults to $GIG_ETL_HOME (else ./data), read when a run starts,
never at import.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, Iterator

import dagster as dg
import duckdb
from confluent_kafka import Consumer
from dagster_duckdb import DuckDBResource
from pydantic import Field

from gig_etl.lib.catalog import DEFAULT_MAX_ATTRIBUTE_COLUMNS
from gig_etl.lib.deployment import Deployment, current_deployment
from gig_etl.lib.drain import DrainLimits
from gig_etl.lib.home import locks_root, resolve_home
from gig_etl.lib.kafka import BULK_READ_SETTINGS, KafkaConnection, open_consumer
from gig_etl.lib.load import CHUNK_MESSAGES
from gig_etl.lib.lock import integration_lock, lake_writer_lock
from gig_etl.lib.raw_store import RawStore
from gig_etl.lib.registry import IntegrationRegistry
from gig_etl.lib.shard import Shard
from gig_etl.lib.warehouse import (
    DEFAULT_MEMORY_LIMIT,
    EXTENSION_SETTINGS,
    Lake,
    attach_lake,
    embedded_lake,
    legacy_warehouse_file,
    open_lake,
    prepare_for_writing,
)


class GigEtlHomeResource(dg.ConfigurableResource):
    """Raw Parquet, its manifest and the integrations' locks: under the home folder,
    or on the team's servers that the environment names (`lib/deployment.py`)."""

    path: str | None = None  # None: $GIG_ETL_HOME, else ./data
    # How long a run waits for another process working on the same integration.
    lock_wait_s: float = 60.0

    def root(self) -> Path:
        return resolve_home(self.path)

    def deployment(self) -> Deployment:
        return current_deployment(self.path)

    def raw_store(self) -> RawStore:
        return self.deployment().raw_store()

    def integration_lock(self, integration: str, purpose: str, shard: Shard | None = None) -> AbstractContextManager[None]:
        """Held while a process drains (a shard of), loads or compacts the integration's raw files."""
        shared = self.deployment().shared_locks()
        return integration_lock(locks_root(self.root()), integration, purpose, self.lock_wait_s, shared, shard)


class IntegrationRegistryResource(dg.ConfigurableResource):
    """The GiG connections and their approval status."""

    home: str | None = None

    def registry(self) -> IntegrationRegistry:
        return current_deployment(self.home).registry()


class KafkaResource(dg.ConfigurableResource):
    """Kafka consumers for draining, with the bounds that keep a drain's memory flat."""

    batch_max_messages: int = DrainLimits.batch_max_messages
    batch_max_bytes: int = DrainLimits.batch_max_bytes
    stall_timeout_s: float = DrainLimits.stall_timeout_s
    connect_timeout_s: float = 10.0

    def limits(self) -> DrainLimits:
        return DrainLimits(
            batch_max_messages=self.batch_max_messages,
            batch_max_bytes=self.batch_max_bytes,
            stall_timeout_s=self.stall_timeout_s,
        )

    @contextmanager
    def consumer(self, connection: KafkaConnection, integration: str) -> Iterator[Consumer]:
        """A consumer for `assign()`-based reads whose broker has answered; closed
        when the block ends."""
        consumer = open_consumer(
            connection,
            {
                # Offsets are the raw store's record; Kafka's group offsets are not used.
                "group.id": f"gig-etl.{integration}",
                "client.id": f"gig-etl.{integration}",
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "auto.offset.reset": "error",
                # Each partition's end, reported by the broker, ends a drain's tail at once.
                # The report comes with an empty fetch, which the broker holds back for up
                # to fetch.wait.max.ms (500 by default) in case more arrives.
                "enable.partition.eof": True,
                "fetch.wait.max.ms": 50,
                "socket.connection.setup.timeout.ms": 10_000,
            }
            | BULK_READ_SETTINGS,
            timeout_s=self.connect_timeout_s,
        )
        try:
            yield consumer
        finally:
            consumer.close()


class WarehouseResource(DuckDBResource):
    """The warehouse, a DuckLake: a catalog database plus a data path for its
    Parquet files. Each connection is dagster-duckdb's, an in-memory DuckDB (its
    `database`), with the lake attached. By default the lake is embedded in the
    home: a SQLite catalog and a local folder; a team points `catalog` at Postgres
    (`postgres:dbname=... host=...`) and `data_path` at object storage."""

    database: str = ":memory:"
    connection_config: dict[str, Any] = Field(default_factory=lambda: dict(EXTENSION_SETTINGS))
    # None: the deployment's (`lib/deployment.py`), by default sqlite:$GIG_ETL_HOME/lake/catalog.sqlite
    catalog: str | None = None
    data_path: str | None = None  # None: the deployment's, by default $GIG_ETL_HOME/lake/data/
    memory_limit: str = DEFAULT_MEMORY_LIMIT
    # Columns that attributes outside the contract may add to `profiles`; past it,
    # new names keep their values in profiles.extra_attributes.
    max_attribute_columns: int = DEFAULT_MAX_ATTRIBUTE_COLUMNS
    # How long an earlier snapshot stays readable (`gig-etl sql --as-of`) before
    # lake maintenance expires it and deletes the files only it used.
    snapshot_retention_days: float = 7.0
    # Messages of one topic a load applies in one transaction: larger chunks load
    # faster (each reads the lake's tables once) and hold more in memory.
    load_chunk_messages: int = CHUNK_MESSAGES
    # How long a run waits for another that writes the lake (a load, maintenance).
    writer_wait_s: float = 1800.0

    def lake(self) -> Lake:
        deployment = current_deployment()
        lake = deployment.lake()
        if self.catalog is None and self.data_path is None:
            return lake
        return Lake(catalog=self.catalog or lake.catalog, data_path=self.data_path or lake.data_path,
                    object_store=deployment.object_store)

    def describe(self) -> str:
        return self.lake().describe()

    def legacy_file(self) -> Path | None:
        """Where an older gig-etl kept its warehouse: only the embedded lake shares
        its home with one."""
        home = resolve_home()
        return legacy_warehouse_file(home) if self.lake() == embedded_lake(home) else None

    def writer_lock(self, purpose: str) -> AbstractContextManager[None]:
        """Held by whatever writes the lake: one process at a time (`lake_writer_lock`)."""
        deployment = current_deployment()
        return lake_writer_lock(locks_root(deployment.home), purpose, self.writer_wait_s, deployment.shared_locks())

    @contextmanager
    def get_connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection that writes the lake, with its schema in place, held by one
        process at a time."""
        with self.writer_lock("a run writing the lake"), super().get_connection() as connection:
            try:
                attach_lake(connection, self.lake(), memory_limit=self.memory_limit)
                prepare_for_writing(connection, self.legacy_file())
                yield connection
            finally:
                connection.close()

    @contextmanager
    def read_connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection that only reads the lake: it neither waits for a writer nor
        holds one up."""
        with open_lake(self.lake(), read_only=True, memory_limit=self.memory_limit) as connection:
            yield connection


class HealthResource(dg.ConfigurableResource):
    """Thresholds of the asset checks."""

    max_quarantine_rate: float = 0.05  # of the messages a run reads
    max_event_age_hours: float = 24.0  # newest event older than this: warn
    # An event dated later than now by more than this is clock skew or bad data:
    # counted, warned about, and not taken as fresh.
    max_clock_skew_minutes: float = 5.0
    lag_growth_tolerance: int = 10_000  # messages; lag growing by more over 3 runs: warn
