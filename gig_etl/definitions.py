"""The gig-etl code location: the domain folders' definitions and the resources."""

import dagster as dg

from gig_etl.defs.raw import definitions as raw
from gig_etl.defs.resources import GigEtlHomeResource, GigStreamResource, KafkaResource

defs = dg.Definitions.merge(
    raw.defs,
    dg.Definitions(
        resources={
            "gig_etl_home": GigEtlHomeResource(),
            "kafka": KafkaResource(),
            "gig_stream": GigStreamResource(
                tenant_id=dg.EnvVar("GIG_ETL_TENANT_ID"),
                bootstrap_servers=dg.EnvVar("GIG_ETL_BOOTSTRAP_SERVERS"),
            ),
        }
    ),
)
