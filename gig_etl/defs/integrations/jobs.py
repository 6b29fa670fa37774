import dagster as dg

# Partitioned by integration, like every asset it selects. Compaction runs on
# its own daily schedule, not on every refresh.
refresh_integration_job = dg.define_asset_job(
    "refresh_integration",
    selection=dg.AssetSelection.groups("raw", "warehouse") - dg.AssetSelection.assets(["raw", "compacted_days"]),
    description="Drains one approved integration's topics and loads them into the warehouse.",
)
