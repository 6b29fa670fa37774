import dagster as dg

# Partitioned by integration, like every asset it selects. Compaction runs on
# its own daily schedule, not on every refresh.
refresh_integration_job = dg.define_asset_job(
    "refresh_integration",
    selection=dg.AssetSelection.groups("raw", "warehouse", "marts") - dg.AssetSelection.assets(["raw", "compacted_days"]),
    description="Drains one approved integration's topics, loads them into the warehouse and refreshes the marts.",
)
