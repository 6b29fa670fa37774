import json

import dagster as dg

from gig_etl.defs.integrations.jobs import (
    CLI_PID_TAG,
    DAEMON_RUN_CONFIG,
    SHARD_TAG,
    SLOT_TAG,
    TICK_TAG,
    drain_shard_job,
    load_integration_job,
    refresh_integration_job,
    tick_requests,
)
from gig_etl.defs.integrations.partitions import integrations_partitions
from gig_etl.defs.resources import IntegrationRegistryResource
from gig_etl.lib.deployment import current_deployment
from gig_etl.lib.gate import decide_on_approvals
from gig_etl.lib.shard import Shard


@dg.sensor(
    jobs=[refresh_integration_job, drain_shard_job],
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Watches the integration registry: on each approval it adds the integration's "
        "partition and requests its first run. Skips, naming each status, while none is approved."
    ),
)
def integration_approval_sensor(
    context: dg.SensorEvaluationContext, integration_registry: IntegrationRegistryResource
) -> dg.SensorResult | dg.SkipReason:
    handled = set(json.loads(context.cursor)) if context.cursor else set()
    decision = decide_on_approvals(
        integration_registry.registry().list(),
        set(context.instance.get_dynamic_partitions(integrations_partitions.name)),
        handled,
    )
    if decision.skip_reason and not decision.partitions_to_add:
        return dg.SkipReason(decision.skip_reason)
    return dg.SensorResult(
        run_requests=[
            request
            for name, key in decision.first_runs
            for request in tick_requests(
                name, key, key, current_deployment().drain_shards, DAEMON_RUN_CONFIG, refresh_integration_job.name
            )
        ],
        dynamic_partitions_requests=(
            [integrations_partitions.build_add_request(decision.partitions_to_add)]
            if decision.partitions_to_add
            else []
        ),
        cursor=json.dumps(decision.handled),
    )


def load_after_shards(instance: dg.DagsterInstance, run: dg.DagsterRun) -> dg.RunRequest | dg.SkipReason:
    """The load of a tick whose shard drains have all succeeded, asked once (its run
    key is the tick's); else why not yet."""
    integration, tick = run.tags.get("dagster/partition"), run.tags.get(TICK_TAG)
    if integration is None or tick is None:
        return dg.SkipReason(f"run {run.run_id} is not a shard of a tick")
    shards = Shard.parse(run.tags[SHARD_TAG]).count
    siblings = instance.get_run_records(
        filters=dg.RunsFilter(job_name=drain_shard_job.name, tags={"dagster/partition": integration, TICK_TAG: tick})
    )
    done = {r.dagster_run.tags.get(SHARD_TAG) for r in siblings if r.dagster_run.status == dg.DagsterRunStatus.SUCCESS}
    if len(done) < shards:
        return dg.SkipReason(f"{integration}: {len(done)} of {shards} shards drained for tick {tick}")
    return dg.RunRequest(
        run_key=f"load:{integration}:{tick}", partition_key=integration, run_config=DAEMON_RUN_CONFIG,
        tags={SLOT_TAG: integration, TICK_TAG: tick}, job_name=load_integration_job.name,
    )


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.SUCCESS,
    monitored_jobs=[drain_shard_job],
    request_job=load_integration_job,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Once every shard of an integration's tick has drained, requests the tick's load.",
)
def shards_drained_sensor(context: dg.RunStatusSensorContext) -> dg.RunRequest | dg.SkipReason:
    if CLI_PID_TAG in context.dagster_run.tags:
        return dg.SkipReason("a shard of a `gig-etl run`, which loads its own tick")
    return load_after_shards(context.instance, context.dagster_run)
