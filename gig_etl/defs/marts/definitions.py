import dagster as dg

from gig_etl.defs.marts.assets import marts_views

defs = dg.Definitions(assets=[marts_views])
