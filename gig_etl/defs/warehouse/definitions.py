import dagster as dg

from gig_etl.defs.warehouse.assets import warehouse_tables
from gig_etl.defs.warehouse.maintenance import lake_maintenance, lake_maintenance_job, lake_maintenance_schedule

defs = dg.Definitions(
    assets=[warehouse_tables, lake_maintenance], jobs=[lake_maintenance_job], schedules=[lake_maintenance_schedule]
)
