import dagster as dg

from gig_etl.defs.raw.assets import raw_events, raw_profiles

drain_raw_job = dg.define_asset_job(
    "drain_raw",
    selection=dg.AssetSelection.groups("raw"),
    description="Drains the tenant's Kafka topics into raw Parquet.",
)

defs = dg.Definitions(assets=[raw_profiles, raw_events], jobs=[drain_raw_job])
