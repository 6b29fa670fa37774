import dagster as dg

from gig_etl.defs.raw.assets import raw_events, raw_profiles

defs = dg.Definitions(assets=[raw_profiles, raw_events])
