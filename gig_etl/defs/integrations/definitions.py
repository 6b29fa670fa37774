import dagster as dg

from gig_etl.defs.integrations.jobs import drain_shard_job, load_integration_job, refresh_integration_job
from gig_etl.defs.integrations.schedules import refresh_schedule, sharded_refresh_schedule
from gig_etl.defs.integrations.sensors import integration_approval_sensor, shards_drained_sensor

defs = dg.Definitions(
    jobs=[refresh_integration_job, drain_shard_job, load_integration_job],
    sensors=[integration_approval_sensor, shards_drained_sensor],
    schedules=[refresh_schedule, sharded_refresh_schedule],
)
