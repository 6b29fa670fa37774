"""`make demo`: the main job end to end on the embedded defaults."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import dagster as dg

from gig_etl.broker import EmbeddedBroker
from gig_etl.defs.raw.assets import raw_events, raw_profiles
from gig_etl.defs.resources import GigEtlHomeResource, GigStreamResource, KafkaResource
from gig_etl.instance import dagster_instance
from gig_etl.lib.home import raw_root
from gig_etl.lib.kafka import KafkaConnection
from gig_etl.lib.raw_store import RawStore
from gig_etl.simulate import generate_traffic, print_progress, produce_traffic


def run_demo(
    home: Path, tenant: str, integration: str, customers: int, seed: int, chaos: float, echo: Callable[[str], None]
) -> None:
    echo(f"gig-etl demo: home {home}")
    # The embedded broker keeps its topics in memory, so each demo starts its
    # integration afresh: the offsets of a previous broker would not apply.
    forgotten = RawStore(raw_root(home)).forget_integration(integration)
    if forgotten:
        echo(f"cleared {forgotten} raw files of the previous demo")
    with EmbeddedBroker() as broker:
        echo(f"1/3 embedded broker on {broker.bootstrap_servers}")
        echo(f"2/3 simulating {customers:,} customers of tenant {tenant!r} (seed {seed}, chaos {chaos})")
        summary = produce_traffic(
            KafkaConnection(broker.bootstrap_servers),
            tenant,
            generate_traffic(tenant, customers, seed=seed, chaos=chaos),
            progress=print_progress,
        )
        echo("    " + summary.report().replace("\n", "\n    "))
        echo("3/3 draining the topics into raw Parquet through Dagster")
        resources = {
            "gig_etl_home": GigEtlHomeResource(path=str(home)),
            "kafka": KafkaResource(),
            "gig_stream": GigStreamResource(
                integration=integration, tenant_id=tenant, bootstrap_servers=broker.bootstrap_servers
            ),
        }
        result = dg.materialize(
            [raw_profiles, raw_events], instance=dagster_instance(home), resources=resources, raise_on_error=False
        )
    if not result.success:
        raise SystemExit("the drain run failed: see the Dagster UI (make ui) for its logs")
    echo(f"    run {result.run_id} succeeded")
    for event in result.get_asset_materialization_events():
        materialization = event.materialization
        meta = {k: v.value for k, v in materialization.metadata.items()}
        echo(
            f"    {materialization.asset_key.to_user_string()}: {meta['rows']:,} messages from {meta['topic']} "
            f"in {meta['files']} Parquet files ({meta['bytes_written']:,} bytes)"
        )
    echo(f"raw Parquet under {raw_root(home) / integration}")
