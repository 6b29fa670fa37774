import dagster as dg

from gig_etl.defs.raw.assets import raw_topics
from gig_etl.defs.raw.compaction import (
    compact_raw_job,
    compaction_schedule,
    raw_compacted_days,
)

defs = dg.Definitions(assets=[raw_topics, raw_compacted_days], jobs=[compact_raw_job], schedules=[compaction_schedule])
