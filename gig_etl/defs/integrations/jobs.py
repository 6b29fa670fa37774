import dagster as dg

# Partitioned by integration, like every asset it selects.
refresh_integration_job = dg.define_asset_job(
    "refresh_integration",
    selection=dg.AssetSelection.groups("raw", "warehouse"),
    description="Drains one approved integration's topics and loads them into the warehouse.",
)
