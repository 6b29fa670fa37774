"""Marts: the analyst views over the warehouse tables."""

from dataclasses import dataclass

import dagster as dg

from gig_etl.defs.integrations.gate import approved_integration
from gig_etl.defs.integrations.partitions import integrations_partitions
from gig_etl.defs.ownership import OWNERS
from gig_etl.defs.resources import IntegrationRegistryResource, WarehouseResource
from gig_etl.lib.identifiers import quote_identifier
from gig_etl.lib.warehouse import transaction


@dataclass(frozen=True)
class MartView:
    description: str
    tables: list[str]  # the warehouse tables it reads


VIEWS = {
    "marketable_profiles": MartView(
        "View `marketable_profiles`: profiles that may receive marketing on a channel. Subscribed, and never "
        "blocked, self-excluded or a test account, whatever the consent.",
        ["subscriptions", "profiles"],
    ),
    "player_value": MartView(
        "View `player_value`: per profile and currency, approved deposits and withdrawals over 7, 30 and 90 "
        "days (each payment once, at its newest status), net deposit, last deposit; last activity, lifetime wins.",
        ["events", "profiles"],
    ),
}


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            ["marts", name], deps=[["warehouse", t] for t in view.tables], group_name="marts", kinds={"ducklake"},
            description=view.description, owners=OWNERS,
        )
        for name, view in VIEWS.items()
    ],
    partitions_def=integrations_partitions,
    name="marts_views",
)
def marts_views(
    context: dg.AssetExecutionContext,
    integration_registry: IntegrationRegistryResource,
    warehouse: WarehouseResource,
):
    """Counts each integration's rows in the views (the lake keeps their SQL, made
    with its schema)."""
    integration = approved_integration(context, integration_registry)
    with warehouse.read_connection() as db, transaction(db):  # one snapshot for both
        rows = {
            name: db.execute(
                f"SELECT count(*) FROM {quote_identifier(name)} WHERE integration = ?", [integration.name]
            ).fetchall()[0][0]
            for name in VIEWS
        }
    for name, count in rows.items():
        yield dg.MaterializeResult(asset_key=["marts", name], metadata={"dagster/row_count": count})
