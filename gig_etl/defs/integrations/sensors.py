import json

import dagster as dg

from gig_etl.defs.integrations.jobs import DAEMON_RUN_CONFIG, refresh_integration_job
from gig_etl.defs.integrations.partitions import integrations_partitions
from gig_etl.defs.resources import IntegrationRegistryResource
from gig_etl.lib.gate import decide_on_approvals


@dg.sensor(
    job=refresh_integration_job,
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
            dg.RunRequest(run_key=key, partition_key=name, run_config=DAEMON_RUN_CONFIG) for name, key in decision.first_runs
        ],
        dynamic_partitions_requests=(
            [integrations_partitions.build_add_request(decision.partitions_to_add)]
            if decision.partitions_to_add
            else []
        ),
        cursor=json.dumps(decision.handled),
    )
