import dagster as dg

from gig_etl.defs.warehouse.assets import attribute_catalog

defs = dg.Definitions(assets=[attribute_catalog])
