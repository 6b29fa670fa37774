import dagster as dg

from gig_etl.defs.integrations.jobs import DAEMON_RUN_CONFIG, drain_shard_job, refresh_integration_job, tick_requests
from gig_etl.defs.integrations.partitions import integrations_partitions
from gig_etl.defs.resources import IntegrationRegistryResource
from gig_etl.lib.deployment import current_deployment
from gig_etl.lib.gate import scheduled_integrations

REFRESH_CRON = "*/5 * * * *"


def requests_for_approved(
    context: dg.ScheduleEvaluationContext, integration_registry: IntegrationRegistryResource, run_key_prefix: str,
    shards: int = 1,
) -> list[dg.RunRequest] | dg.SkipReason:
    """The runs of each approved integration that has its partition (one, or one per
    drain shard); else why none."""
    names, skip_reason = scheduled_integrations(
        integration_registry.registry().list(),
        set(context.instance.get_dynamic_partitions(integrations_partitions.name)),
    )
    if skip_reason:
        return dg.SkipReason(skip_reason)
    tick = context.scheduled_execution_time.isoformat()
    return [
        request
        for name in names
        for request in tick_requests(name, f"{run_key_prefix}{name}:{tick}", tick, shards, DAEMON_RUN_CONFIG)
    ]


@dg.schedule(
    job=refresh_integration_job,
    cron_schedule=REFRESH_CRON,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Every 5 minutes, refreshes every approved integration; skips, naming each status, when none is "
    "(or when GIG_ETL_DRAIN_SHARDS makes it `sharded_refresh_schedule`'s work).",
)
def refresh_schedule(
    context: dg.ScheduleEvaluationContext, integration_registry: IntegrationRegistryResource
) -> list[dg.RunRequest] | dg.SkipReason:
    if current_deployment().drain_shards > 1:
        return dg.SkipReason("GIG_ETL_DRAIN_SHARDS > 1: sharded_refresh_schedule drains each shard")
    return requests_for_approved(context, integration_registry, run_key_prefix="")


@dg.schedule(
    job=drain_shard_job,
    cron_schedule=REFRESH_CRON,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="With GIG_ETL_DRAIN_SHARDS=N, every 5 minutes drains each approved integration in N runs side by "
    "side; `shards_drained_sensor` loads it once they have all succeeded.",
)
def sharded_refresh_schedule(
    context: dg.ScheduleEvaluationContext, integration_registry: IntegrationRegistryResource
) -> list[dg.RunRequest] | dg.SkipReason:
    shards = current_deployment().drain_shards
    if shards <= 1:
        return dg.SkipReason("GIG_ETL_DRAIN_SHARDS is 1: refresh_schedule refreshes each integration in one run")
    return requests_for_approved(context, integration_registry, run_key_prefix="", shards=shards)
