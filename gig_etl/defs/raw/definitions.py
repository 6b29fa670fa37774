import dagster as dg

from gig_etl.defs.raw.assets import raw_topics

defs = dg.Definitions(assets=[raw_topics])
