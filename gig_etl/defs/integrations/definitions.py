import dagster as dg

from gig_etl.defs.integrations.jobs import refresh_integration_job
from gig_etl.defs.integrations.schedules import refresh_schedule
from gig_etl.defs.integrations.sensors import integration_approval_sensor

defs = dg.Definitions(
    jobs=[refresh_integration_job], sensors=[integration_approval_sensor], schedules=[refresh_schedule]
)
