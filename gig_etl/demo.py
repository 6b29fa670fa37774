"""`make demo`: the main job end to end on the embedded defaults."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import duckdb

from gig_etl.broker import EmbeddedBroker
from gig_etl.lib.deployment import current_deployment
from gig_etl.lib.identifiers import quote_identifier
from gig_etl.lib.kafka import KafkaConnection
from gig_etl.lib.load import clear_integration
from gig_etl.lib.registry import Integration, RegistryError
from gig_etl.lib.warehouse import connect_warehouse, open_lake
from gig_etl.simulate import generate_traffic, produce_with_progress
from gig_etl.tick import outcome_lines, run_tick


def fresh_demo_integration(
    home: Path, integration: str, tenant: str, port: int, echo: Callable[[str], None]
) -> Integration | None:
    """Readies the embedded demo integration for a new broker; returns it if it exists.

    The embedded broker keeps its topics in memory, so a new one starts at offset 0:
    the integration's recorded offsets, raw files and warehouse rows are cleared."""
    deployment = current_deployment(home)
    registry = deployment.registry()
    bootstrap_servers = f"127.0.0.1:{port}"
    try:
        existing = registry.get(integration)
    except RegistryError:
        existing = None
    if existing and (existing.bootstrap_servers, existing.tenant_id) != (bootstrap_servers, tenant):
        raise RegistryError(
            f"integration {integration!r} exists for {existing.tenant_id} on {existing.bootstrap_servers}; "
            f"use --port {existing.bootstrap_servers.rsplit(':', 1)[1]} or another GIG_ETL_HOME"
        )
    forgotten = deployment.raw_store().forget_integration(integration)
    with connect_warehouse(deployment.lake()) as db:
        clear_integration(db, integration)
    if forgotten:
        echo(f"cleared the previous embedded run: {forgotten} raw files and the warehouse rows of {integration!r}")
    return existing


def approve_demo_integration(
    home: Path, integration: str, tenant: str, port: int, existing: Integration | None, echo: Callable[[str], None]
) -> None:
    registry = current_deployment(home).registry()
    if existing is None:
        registry.create(integration, tenant, f"127.0.0.1:{port}")
        registry.approve(integration)
        echo(f"created integration {integration!r} and approved it, as an operator would")
    else:
        echo(f"integration {integration!r} exists: {existing.status.value}")


def run_demo(
    home: Path,
    integration: str,
    tenant: str,
    port: int,
    customers: int,
    seed: int,
    chaos: float,
    echo: Callable[[str], None],
) -> None:
    echo(f"gig-etl demo: home {home}")
    existing = fresh_demo_integration(home, integration, tenant, port, echo)
    with EmbeddedBroker(port) as broker:
        echo(f"1/4 embedded broker on {broker.bootstrap_servers}")
        echo(f"2/4 simulating {customers:,} customers of tenant {tenant!r} (seed {seed}, chaos {chaos})")
        summary = produce_with_progress(
            KafkaConnection(broker.bootstrap_servers), tenant,
            generate_traffic(tenant, customers, seed=seed, chaos=chaos), customers,
        )
        echo("    " + summary.report().replace("\n", "\n    "))
        echo("3/4 the integration")
        approve_demo_integration(home, integration, tenant, port, existing, echo)
        echo("4/4 one refresh tick through Dagster (gig-etl run)")
        outcomes = run_tick(home, integration, echo=echo)
    for outcome in outcomes:
        echo("\n".join("    " + line for line in outcome_lines(outcome)))
        if not outcome.success:
            raise SystemExit(1)
    deployment = current_deployment(home)
    echo(f"raw Parquet under {deployment.raw_store().describe()}/{integration}; runs in the Dagster UI: make ui")
    echo(f"warehouse: the lake {deployment.lake().describe()}:")
    with open_lake(deployment.lake(), read_only=True) as db:
        for line in warehouse_summary(db, integration):
            echo("    " + line)


def warehouse_summary(db: duckdb.DuckDBPyConnection, integration: str) -> list[str]:
    """A few lines on what the warehouse holds for one integration."""

    def one(query: str) -> tuple:
        return db.execute(query, [integration]).fetchall()[0]

    lines = []
    for table in ("profiles", "subscriptions", "events", "event_catalog", "attribute_catalog", "quarantine"):
        lines.append(f"{table:<18} {one(f'SELECT count(*) FROM {quote_identifier(table)} WHERE integration = ?')[0]:>9,} rows")
    for view in ("marketable_profiles", "player_value"):
        lines.append(f"{view:<18} {one(f'SELECT count(*) FROM {quote_identifier(view)} WHERE integration = ?')[0]:>9,} rows (view)")
    top = db.execute(
        "SELECT event_name, event_count FROM event_catalog WHERE integration = ? ORDER BY event_count DESC LIMIT 3",
        [integration],
    ).fetchall()
    lines.append("most frequent events: " + ", ".join(f"{name} {count:,}" for name, count in top))
    reasons = db.execute(
        "SELECT reason_code, count(*), any_value(reason ORDER BY kafka_partition, kafka_offset) FROM quarantine "
        "WHERE integration = ? GROUP BY reason_code ORDER BY count(*) DESC, reason_code LIMIT 4",
        [integration],
    ).fetchall()
    lines.append("quarantine, top reasons (code, messages, an example):")
    lines += [f"  {code:<18} {count:>6,}  {example[:70]}" for code, count, example in reasons]
    return lines
