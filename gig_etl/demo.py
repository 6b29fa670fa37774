"""`make demo`: the main job end to end on the embedded defaults."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from gig_etl.broker import EmbeddedBroker
from gig_etl.lib.home import raw_root
from gig_etl.lib.kafka import KafkaConnection
from gig_etl.lib.raw_store import RawStore
from gig_etl.lib.registry import IntegrationRegistry, RegistryError, registry_path
from gig_etl.simulate import generate_traffic, print_progress, produce_traffic
from gig_etl.tick import outcome_lines, run_tick


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
    registry = IntegrationRegistry(registry_path(home))
    bootstrap_servers = f"127.0.0.1:{port}"
    try:
        existing = registry.get(integration)
    except RegistryError:
        existing = None
    if existing and (existing.bootstrap_servers, existing.tenant_id) != (bootstrap_servers, tenant):
        raise RegistryError(
            f"integration {integration!r} exists for {existing.tenant_id} on {existing.bootstrap_servers}; "
            f"run the demo with --port {existing.bootstrap_servers.rsplit(':', 1)[1]} or another GIG_ETL_HOME"
        )
    # The embedded broker keeps its topics in memory, so each demo starts its
    # integration's raw data afresh: the offsets of a previous broker do not apply.
    forgotten = RawStore(raw_root(home)).forget_integration(integration)
    if forgotten:
        echo(f"cleared {forgotten} raw files of the previous demo")
    with EmbeddedBroker(port) as broker:
        echo(f"1/4 embedded broker on {broker.bootstrap_servers}")
        echo(f"2/4 simulating {customers:,} customers of tenant {tenant!r} (seed {seed}, chaos {chaos})")
        summary = produce_traffic(
            KafkaConnection(broker.bootstrap_servers),
            tenant,
            generate_traffic(tenant, customers, seed=seed, chaos=chaos),
            progress=print_progress,
        )
        echo("    " + summary.report().replace("\n", "\n    "))
        if existing is None:
            registry.create(integration, tenant, bootstrap_servers)
            echo(f"3/4 created integration {integration!r} and approved it, as an operator would")
            registry.approve(integration)
        else:
            echo(f"3/4 integration {integration!r} exists: {existing.status.value}")
        echo("4/4 one refresh tick through Dagster (gig-etl run)")
        outcomes = run_tick(home, integration, echo=echo)
    for outcome in outcomes:
        echo("\n".join("    " + line for line in outcome_lines(outcome)))
        if not outcome.success:
            raise SystemExit(1)
    echo(f"raw Parquet under {raw_root(home) / integration}; runs in the Dagster UI: make ui")
