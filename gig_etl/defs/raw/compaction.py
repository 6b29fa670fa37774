"""Daily compaction of raw batches: a past day's files merged, one per topic and partition."""

from datetime import UTC, datetime

import dagster as dg

from gig_etl.contract import TopicKind
from gig_etl.defs.integrations.gate import approved_integration
from gig_etl.defs.integrations.partitions import integrations_partitions
from gig_etl.defs.integrations.schedules import requests_for_approved
from gig_etl.defs.ownership import OWNERS
from gig_etl.defs.raw.assets import raw_asset_key
from gig_etl.defs.resources import (
    GigEtlHomeResource,
    IntegrationRegistryResource,
    WarehouseResource,
)
from gig_etl.lib.load import loaded_batch_ids, record_compacted

COMPACTED_KEY = dg.AssetKey(["raw", "compacted_days"])


@dg.asset(
    key=COMPACTED_KEY,
    # Not in the raw group: a daily job's asset that has not run yet would show
    # that group as unhealthy until its first day.
    group_name="maintenance",
    kinds={"parquet"},
    partitions_def=integrations_partitions,
    deps=[raw_asset_key(kind) for kind in TopicKind],
    owners=OWNERS,
    description=(
        "Raw batches of past days merged into one Parquet file per topic and partition, with the same "
        "messages; the manifest swaps them in one transaction. Only days the warehouse has fully loaded."
    ),
)
def raw_compacted_days(
    context: dg.AssetExecutionContext,
    integration_registry: IntegrationRegistryResource,
    gig_etl_home: GigEtlHomeResource,
    warehouse: WarehouseResource,
) -> dg.MaterializeResult:
    integration = approved_integration(context, integration_registry)
    store = gig_etl_home.raw_store()
    today = datetime.now(UTC).date().isoformat()
    compacted_days, files_before, files_after = [], 0, 0
    with gig_etl_home.integration_lock(integration.name, f"compaction, run {context.run.run_id}"), warehouse.get_connection() as db:
        loaded = loaded_batch_ids(db, integration.name)
        for day, batches in sorted(store.compaction_candidates(integration.name, before_day=today).items()):
            if any(b.batch_id not in loaded for b in batches):
                context.log.info(f"{day}: not all of its batches are loaded yet; compacted later")
                continue
            merged = store.compact(batches, lambda new: record_compacted(db, new))
            compacted_days.append(day)
            files_before += len(batches)
            files_after += len(merged)
    context.log.info(f"compacted {len(compacted_days)} day(s): {files_before} files into {files_after}")
    return dg.MaterializeResult(
        metadata={"days": dg.MetadataValue.json(compacted_days), "files_before": files_before, "files_after": files_after}
    )


compact_raw_job = dg.define_asset_job(
    "compact_raw",
    selection=dg.AssetSelection.assets(COMPACTED_KEY),
    description="Merges past days' raw batch files of one integration.",
)


@dg.schedule(
    job=compact_raw_job,
    cron_schedule="30 3 * * *",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Daily at 03:30 UTC, compacts the raw files of every approved integration's past days.",
)
def compaction_schedule(
    context: dg.ScheduleEvaluationContext, integration_registry: IntegrationRegistryResource
) -> list[dg.RunRequest] | dg.SkipReason:
    return requests_for_approved(context, integration_registry, run_key_prefix="compact:")
