import dagster as dg

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

# The daemon's runs print to its console: what happened, not Dagster's step by
# step DEBUG events (the UI keeps every event).
DAEMON_RUN_CONFIG = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}
