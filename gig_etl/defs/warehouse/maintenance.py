"""Daily lake maintenance: small files merged, old snapshots expired, unused files deleted."""

from datetime import UTC, datetime, timedelta

import dagster as dg

from gig_etl.defs.integrations.jobs import DAEMON_RUN_CONFIG
from gig_etl.defs.ownership import OWNERS
from gig_etl.defs.resources import WarehouseResource
from gig_etl.lib.history import maintain_lake
from gig_etl.lib.warehouse import WarehouseNeedsRebuild, WarehouseUnavailable

MAINTENANCE_KEY = dg.AssetKey(["warehouse", "lake_maintenance"])


@dg.asset(
    key=MAINTENANCE_KEY,
    group_name="maintenance",
    kinds={"ducklake"},
    owners=OWNERS,
    # A load that commits to a file being merged makes the merge's commit conflict:
    # it is tried again a little later.
    retry_policy=dg.RetryPolicy(max_retries=3, delay=60),
    description=(
        "The lake kept small and its history bounded: every load adds small Parquet files, which are merged; "
        "snapshots older than the warehouse resource's `snapshot_retention_days` are expired (they can no longer "
        "be read with --as-of); files no snapshot uses are deleted."
    ),
)
def lake_maintenance(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    expire_before = datetime.now(UTC) - timedelta(days=warehouse.snapshot_retention_days)
    try:
        with warehouse.get_connection() as db:
            done = maintain_lake(db, expire_before)
            [(snapshots, oldest)] = db.execute("SELECT count(*), min(snapshot_time) FROM ducklake_snapshots('lake')").fetchall()
    except (WarehouseNeedsRebuild, WarehouseUnavailable) as exc:  # trying again will not help
        raise dg.Failure(description=str(exc), allow_retries=False) from exc
    context.log.info(
        f"merged {done.files_merged} files into {done.files_created}; expired {done.snapshots_expired} snapshots "
        f"older than {expire_before.isoformat(timespec='seconds')}; deleted {done.files_deleted} unused files "
        f"and {done.orphans_deleted} orphans"
    )
    return dg.MaterializeResult(
        metadata={
            "files_merged": done.files_merged,
            "files_created": done.files_created,
            "snapshots_expired": done.snapshots_expired,
            "files_deleted": done.files_deleted,
            "orphans_deleted": done.orphans_deleted,
            "expired_before": expire_before.isoformat(timespec="seconds"),
            "snapshots_kept": snapshots,
            # How far back `gig-etl sql --as-of` reaches.
            "oldest_snapshot_at": oldest.isoformat(timespec="seconds"),
        }
    )


lake_maintenance_job = dg.define_asset_job(
    "maintain_lake", selection=dg.AssetSelection.assets(MAINTENANCE_KEY), description="Lake maintenance, once."
)


@dg.schedule(
    job=lake_maintenance_job,
    cron_schedule="0 4 * * *",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Daily at 04:00 UTC, after raw compaction: merges the lake's small files and expires old snapshots.",
)
def lake_maintenance_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    return dg.RunRequest(run_key=f"maintain:{context.scheduled_execution_time.isoformat()}", run_config=DAEMON_RUN_CONFIG)
