import dagster as dg

from gig_etl.defs.warehouse.assets import warehouse_tables

defs = dg.Definitions(assets=[warehouse_tables])
