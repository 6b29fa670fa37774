"""Reading back what a drain wrote, for assertions."""

import pyarrow.parquet as pq
import polars as pl

from gig_etl.lib.raw_store import RAW_MESSAGE_SCHEMA, RawStore


def raw_messages(store: RawStore, integration: str) -> pl.DataFrame:
    """Every raw message the manifest names for the integration."""
    paths = [b.path for b in store.batches(integration)]
    if not paths:
        return pl.DataFrame(schema=pl.Schema(pl.from_arrow(RAW_MESSAGE_SCHEMA.empty_table()).schema))
    return pl.concat([pl.from_arrow(pq.read_table(p)) for p in paths])
