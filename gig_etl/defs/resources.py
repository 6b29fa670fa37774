"""The external systems gig-etl talks to, as Dagster resources."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import dagster as dg
from confluent_kafka import Consumer

from gig_etl.lib.drain import DrainLimits
from gig_etl.lib.home import raw_root, resolve_home
from gig_etl.lib.kafka import KafkaConnection
from gig_etl.lib.raw_store import RawStore


class GigEtlHomeResource(dg.ConfigurableResource):
    """The folder that holds raw Parquet, the manifest and the warehouse."""

    path: str | None = None  # None: $GIG_ETL_HOME, else ./data

    def root(self) -> Path:
        return resolve_home(self.path)

    def raw_store(self) -> RawStore:
        return RawStore(raw_root(self.root()))


class KafkaResource(dg.ConfigurableResource):
    """Kafka consumers for draining, with the bounds that keep a drain's memory flat."""

    batch_max_messages: int = DrainLimits.batch_max_messages
    batch_max_bytes: int = DrainLimits.batch_max_bytes
    stall_timeout_s: float = DrainLimits.stall_timeout_s

    def limits(self) -> DrainLimits:
        return DrainLimits(
            batch_max_messages=self.batch_max_messages,
            batch_max_bytes=self.batch_max_bytes,
            stall_timeout_s=self.stall_timeout_s,
        )

    @contextmanager
    def consumer(self, connection: KafkaConnection, integration: str) -> Iterator[Consumer]:
        """A consumer for `assign()`-based reads, closed when the block ends."""
        consumer = Consumer(
            connection.client_config()
            | {
                # Offsets are the raw store's record; Kafka's group offsets are not used.
                "group.id": f"gig-etl.{integration}",
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "auto.offset.reset": "error",
                "client.id": f"gig-etl.{integration}",
                "socket.connection.setup.timeout.ms": 10_000,
                "queued.max.messages.kbytes": 65_536,
                "fetch.max.bytes": 52_428_800,
            }
        )
        try:
            yield consumer
        finally:
            consumer.close()


class GigStreamResource(dg.ConfigurableResource):
    """The tenant stream to read and the name its data is kept under."""

    integration: str = "default"
    tenant_id: str
    bootstrap_servers: str

    def connection(self) -> KafkaConnection:
        return KafkaConnection(bootstrap_servers=self.bootstrap_servers)
