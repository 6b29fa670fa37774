"""Warehouse layer: the DuckDB tables analysts query, loaded from raw Parquet."""

import dagster as dg

from gig_etl.defs.integrations.gate import approved_integration
from gig_etl.defs.integrations.partitions import integrations_partitions
from gig_etl.contract import TopicKind
from gig_etl.defs.raw.assets import raw_asset_key
from gig_etl.defs.resources import GigEtlHomeResource, IntegrationRegistryResource, WarehouseResource
from gig_etl.lib.load import load_integration

# The tables one load writes, in one transaction per raw batch.
WAREHOUSE_TABLES = {
    "profiles": "One row per profile: `profile_id` (the integration's identifier), `customer_id` and a typed "
    "column `gig_<attribute>` per GiG attribute, each at its newest value.",
    "subscriptions": "Each profile's subscription status per channel (email, sms, mobile_push, web_push, "
    "inbox, phone, post).",
    "events": "Every distinct event (by message_id) with its type, display name, profile and properties.",
    "event_catalog": "Each event type seen, with when it was first and last seen and how many.",
    "attribute_catalog": "Every profile attribute (`gig_<name>`) and its type: the known ones from approval "
    "on, new ones as they first arrive.",
    "quarantine": "Messages that could not be loaded, byte for byte, with the reason.",
}


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            ["warehouse", table],
            deps=[raw_asset_key(kind) for kind in TopicKind],
            group_name="warehouse",
            kinds={"duckdb", "polars"},
            description=f"Table `{table}`. {description}",
        )
        for table, description in WAREHOUSE_TABLES.items()
    ],
    partitions_def=integrations_partitions,
    name="warehouse_tables",
)
def warehouse_tables(
    context: dg.AssetExecutionContext,
    integration_registry: IntegrationRegistryResource,
    gig_etl_home: GigEtlHomeResource,
    warehouse: WarehouseResource,
):
    """Loads the raw batches not loaded yet: each message once, newest values win,
    erasures applied, bad input quarantined."""
    integration = approved_integration(context, integration_registry)
    with warehouse.connect() as db:
        load = load_integration(db, gig_etl_home.raw_store(), integration)
        table_rows = {
            table: db.execute(f"SELECT count(*) FROM {table} WHERE integration = ?", [integration.name]).fetchall()[0][0]
            for table in WAREHOUSE_TABLES
        }
    for kind, counts in load.counts.items():
        context.log.info(
            f"{integration.name} {kind}: {counts.rows:,} read, {counts.loaded:,} loaded, "
            f"{counts.duplicates:,} duplicates, {counts.quarantined:,} quarantined, {counts.erasures:,} erasures"
        )
    total = load.total
    accounting = {
        "read": total.rows,
        "loaded": total.loaded,
        "duplicates": total.duplicates,
        "quarantined": total.quarantined,
        "erasures": total.erasures,
        "erased_messages": total.erased_messages,
        "raw_batches_loaded": total.batches,
        "raw_files_erased": load.raw_files_erased,
        "per_topic": dg.MetadataValue.json({k: vars(v) for k, v in load.counts.items()}),
    }
    for table in WAREHOUSE_TABLES:
        yield dg.MaterializeResult(
            asset_key=["warehouse", table], metadata={"dagster/row_count": table_rows[table], **accounting}
        )
