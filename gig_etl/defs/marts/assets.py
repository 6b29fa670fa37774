"""Marts: the analyst views over the warehouse tables."""

import dagster as dg

from gig_etl.defs.integrations.gate import approved_integration
from gig_etl.defs.integrations.partitions import integrations_partitions
from gig_etl.defs.ownership import OWNERS
from gig_etl.defs.resources import IntegrationRegistryResource, WarehouseResource
from gig_etl.lib.warehouse import sql_text

VIEWS = {
    "marketable_profiles": (
        "View `marketable_profiles`: profiles that may receive marketing on a channel. Subscribed, and never "
        "blocked, self-excluded or a test account, whatever the consent.",
        ["subscriptions", "profiles"],
    ),
    "player_value": (
        "View `player_value`: per profile, approved deposits and withdrawals over 7, 30 and 90 days (each "
        "payment once, at its newest status), net deposit, last deposit, last activity, lifetime wins.",
        ["events", "profiles"],
    ),
}


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            ["marts", view], deps=[["warehouse", t] for t in tables], group_name="marts", kinds={"duckdb"},
            description=description, owners=OWNERS,
        )
        for view, (description, tables) in VIEWS.items()
    ],
    partitions_def=integrations_partitions,
    name="marts_views",
)
def marts_views(
    context: dg.AssetExecutionContext,
    integration_registry: IntegrationRegistryResource,
    warehouse: WarehouseResource,
):
    """Re-creates the views (their SQL may have changed) and counts each integration's rows."""
    integration = approved_integration(context, integration_registry)
    with warehouse.connect() as db:
        db.execute(sql_text("views.sql")).fetchall()
        for view in VIEWS:
            [(rows,)] = db.execute(f"SELECT count(*) FROM {view} WHERE integration = ?", [integration.name]).fetchall()
            yield dg.MaterializeResult(asset_key=["marts", view], metadata={"dagster/row_count": rows})
