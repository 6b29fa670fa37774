"""The gig-etl code location: the domain folders' definitions and the resources."""

import dagster as dg

from gig_etl.defs.integrations import definitions as integrations
from gig_etl.defs.marts import definitions as marts
from gig_etl.defs.raw import definitions as raw
from gig_etl.defs.resources import (
    GigEtlHomeResource,
    HealthResource,
    IntegrationRegistryResource,
    KafkaResource,
    WarehouseResource,
)
from gig_etl.defs.warehouse import definitions as warehouse

defs = dg.Definitions.merge(
    integrations.defs,
    raw.defs,
    warehouse.defs,
    marts.defs,
    dg.Definitions(
        resources={
            "gig_etl_home": GigEtlHomeResource(),
            "health": HealthResource(),
            "integration_registry": IntegrationRegistryResource(),
            "kafka": KafkaResource(),
            "warehouse": WarehouseResource(),
        }
    ),
)
