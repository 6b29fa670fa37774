"""Warehouse layer: DuckDB tables that analysts query."""

import dagster as dg

from gig_etl.defs.integrations.gate import approved_integration
from gig_etl.defs.integrations.partitions import integrations_partitions
from gig_etl.defs.resources import IntegrationRegistryResource, WarehouseResource
from gig_etl.lib.catalog import known_attribute_catalog


@dg.asset(
    key=["warehouse", "attribute_catalog"],
    group_name="warehouse",
    kinds={"duckdb", "polars"},
    partitions_def=integrations_partitions,
    description=(
        "Table `attribute_catalog`: every profile attribute (`gig_<name>`) of an integration "
        "with its type. Seeded with every attribute the GiG contract knows at the integration's "
        "first run after approval, before any data arrives."
    ),
)
def attribute_catalog(
    context: dg.AssetExecutionContext,
    integration_registry: IntegrationRegistryResource,
    warehouse: WarehouseResource,
) -> dg.MaterializeResult:
    integration = approved_integration(context, integration_registry)
    seed = known_attribute_catalog(integration.name).to_arrow()
    with warehouse.connect() as db:
        db.register("seed", seed)
        count = "SELECT count(*) FROM attribute_catalog WHERE integration = ?"
        [(before,)] = db.execute(count, [integration.name]).fetchall()
        db.execute(
            "INSERT INTO attribute_catalog BY NAME SELECT *, now() AS created_at FROM seed ON CONFLICT DO NOTHING"
        ).fetchall()
        [(after,)] = db.execute(count, [integration.name]).fetchall()
    return dg.MaterializeResult(metadata={"attributes": after, "added": after - before})
