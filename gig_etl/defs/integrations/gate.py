"""The check every asset makes before it touches Kafka or the warehouse."""

import dagster as dg

from gig_etl.defs.resources import IntegrationRegistryResource
from gig_etl.lib.registry import Integration, RegistryError


def approved_integration(
    context: dg.AssetExecutionContext, integration_registry: IntegrationRegistryResource
) -> Integration:
    """The run's integration, if it is approved; otherwise the run fails saying its status."""
    try:
        integration = integration_registry.registry().get(context.partition_key)
    except RegistryError as exc:
        raise dg.Failure(description=str(exc)) from exc
    if not integration.is_readable:
        raise dg.Failure(
            description=f"integration {integration.name!r} is {integration.status.value}, not approved: nothing is read"
        )
    return integration
