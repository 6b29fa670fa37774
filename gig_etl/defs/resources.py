"""The external systems gig-etl talks to, as Dagster resources.

Every path defaults to $GIG_ETL_HOME (else ./data), read when a run starts,
never at import.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Iterator

import dagster as dg
import duckdb
from confluent_kafka import Consumer

from gig_etl.lib.catalog import DEFAULT_MAX_ATTRIBUTE_COLUMNS
from gig_etl.lib.drain import DrainLimits
from gig_etl.lib.home import locks_root, raw_root, resolve_home, warehouse_path
from gig_etl.lib.kafka import BULK_READ_SETTINGS, KafkaConnection, open_consumer
from gig_etl.lib.lock import integration_lock
from gig_etl.lib.raw_store import RawStore
from gig_etl.lib.registry import IntegrationRegistry, registry_path
from gig_etl.lib.warehouse import DEFAULT_MEMORY_LIMIT, connect_warehouse


class GigEtlHomeResource(dg.ConfigurableResource):
    """The folder that holds raw Parquet, its manifest and the integrations' locks."""

    path: str | None = None  # None: $GIG_ETL_HOME, else ./data
    # How long a run waits for another process working on the same integration.
    lock_wait_s: float = 60.0

    def root(self) -> Path:
        return resolve_home(self.path)

    def raw_store(self) -> RawStore:
        return RawStore(raw_root(self.root()))

    def integration_lock(self, integration: str, purpose: str) -> AbstractContextManager[None]:
        """Held while a process drains, loads or compacts the integration's raw files."""
        return integration_lock(locks_root(self.root()), integration, purpose, self.lock_wait_s)


class IntegrationRegistryResource(dg.ConfigurableResource):
    """The GiG connections and their approval status."""

    home: str | None = None

    def registry(self) -> IntegrationRegistry:
        return IntegrationRegistry(registry_path(resolve_home(self.home)))


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


class WarehouseResource(dg.ConfigurableResource):
    """The DuckDB warehouse. DuckDB allows one writing process: a second writer
    waits for the lock (up to `lock_timeout_s`) instead of failing."""

    path: str | None = None  # None: $GIG_ETL_HOME/warehouse.duckdb
    lock_timeout_s: float = 300.0
    memory_limit: str = DEFAULT_MEMORY_LIMIT
    # Columns that attributes outside the contract may add to `profiles`; past it,
    # new names keep their values in profiles.extra_attributes.
    max_attribute_columns: int = DEFAULT_MAX_ATTRIBUTE_COLUMNS

    def database(self) -> Path:
        return Path(self.path) if self.path else warehouse_path(resolve_home())

    @contextmanager
    def connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        connection = connect_warehouse(self.database(), self.lock_timeout_s, self.memory_limit)
        try:
            yield connection
        finally:
            connection.close()


class HealthResource(dg.ConfigurableResource):
    """Thresholds of the asset checks."""

    max_quarantine_rate: float = 0.05  # of the messages a run reads
    max_event_age_hours: float = 24.0  # newest event older than this: warn
    # An event dated later than now by more than this is clock skew or bad data:
    # counted, warned about, and not taken as fresh.
    max_clock_skew_minutes: float = 5.0
    lag_growth_tolerance: int = 10_000  # messages; lag growing by more over 3 runs: warn
