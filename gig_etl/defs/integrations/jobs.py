import dagster as dg

from gig_etl.lib.shard import Shard, all_shards

# Partitioned by integration, like every asset it selects. Raw compaction and
# lake maintenance (the maintenance group) run on daily schedules of their own.
refresh_integration_job = dg.define_asset_job(
    "refresh_integration",
    selection=dg.AssetSelection.groups("raw", "warehouse", "marts"),
    description="Drains one approved integration's topics, loads them into the warehouse and refreshes the marts.",
    # Its steps run one after the other anyway: in the run's own process, with no
    # process started per step (nor the DEBUG lines each such start prints).
    executor_def=dg.in_process_executor,
)

# With GIG_ETL_DRAIN_SHARDS=N, a tick is N drain runs side by side, one per shard,
# then one load run once they have all succeeded (`shards_drained_sensor`).
drain_shard_job = dg.define_asset_job(
    "drain_shard",
    selection=dg.AssetSelection.groups("raw"),
    description="Drains one shard of an integration's partitions (partition p is shard p mod N).",
    executor_def=dg.in_process_executor,
)
load_integration_job = dg.define_asset_job(
    "load_integration",
    selection=dg.AssetSelection.groups("warehouse", "marts"),
    description="Loads what an integration's shards drained into the warehouse and refreshes the marts.",
    executor_def=dg.in_process_executor,
)

# The daemon's runs print to its console: what happened, not Dagster's step by
# step DEBUG events (the UI keeps every event).
DAEMON_RUN_CONFIG = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}

# The run queue's slot: one run at a time per value (the instance's
# tag_concurrency_limits). A shard's drain has a slot of its own, so the shards of
# one integration run side by side while each integration's refreshes do not overlap.
SLOT_TAG = "gig_etl/slot"
TICK_TAG = "gig_etl/tick"  # the tick a shard's drain belongs to, for the load after it
SHARD_TAG = "gig_etl/shard"
# The process of a `gig-etl run` that runs it (a run the CLI started, not the daemon).
CLI_PID_TAG = "gig_etl/pid"


def shard_run_config(shard: Shard, base: dict | None = None) -> dict:
    return (base or {}) | {"ops": {"raw_topics": {"config": {"shard_index": shard.index, "shard_count": shard.count}}}}


def tick_requests(
    name: str, run_key: str, tick: str, shards: int, run_config: dict, job_name: str | None = None
) -> list[dg.RunRequest]:
    """One integration's runs for a tick: one of `job_name` (by default the job of
    the schedule asking: a refresh, a compaction), or with `shards`, a drain per shard."""
    if shards <= 1:
        return [dg.RunRequest(run_key=run_key, partition_key=name, run_config=run_config, tags={SLOT_TAG: name},
                              job_name=job_name)]
    return [
        dg.RunRequest(
            run_key=f"{run_key}:{shard.name}", partition_key=name, run_config=shard_run_config(shard, run_config),
            tags={SLOT_TAG: f"{name}/{shard.name}", TICK_TAG: tick, SHARD_TAG: f"{shard.index}/{shard.count}"},
            job_name=drain_shard_job.name,
        )
        for shard in all_shards(shards)
    ]
