import dagster as dg

from gig_etl.defs.integrations.jobs import DAEMON_RUN_CONFIG, refresh_integration_job
from gig_etl.defs.integrations.partitions import integrations_partitions
from gig_etl.defs.resources import IntegrationRegistryResource
from gig_etl.lib.gate import scheduled_integrations

REFRESH_CRON = "*/5 * * * *"


def requests_for_approved(
    context: dg.ScheduleEvaluationContext, integration_registry: IntegrationRegistryResource, run_key_prefix: str
) -> list[dg.RunRequest] | dg.SkipReason:
    """One run per approved integration that has its partition; else why none."""
    names, skip_reason = scheduled_integrations(
        integration_registry.registry().list(),
        set(context.instance.get_dynamic_partitions(integrations_partitions.name)),
    )
    if skip_reason:
        return dg.SkipReason(skip_reason)
    tick = context.scheduled_execution_time.isoformat()
    return [
        dg.RunRequest(run_key=f"{run_key_prefix}{name}:{tick}", partition_key=name, run_config=DAEMON_RUN_CONFIG)
        for name in names
    ]


@dg.schedule(
    job=refresh_integration_job,
    cron_schedule=REFRESH_CRON,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Every 5 minutes, refreshes every approved integration; skips, naming each status, when none is.",
)
def refresh_schedule(
    context: dg.ScheduleEvaluationContext, integration_registry: IntegrationRegistryResource
) -> list[dg.RunRequest] | dg.SkipReason:
    return requests_for_approved(context, integration_registry, run_key_prefix="")
