"""Reading back what a drain wrote, for assertions."""

import polars as pl
import pyarrow.parquet as pq

from gig_etl.lib.raw_store import RAW_MESSAGE_SCHEMA, RawStore


def raw_messages(store: RawStore, integration: str) -> pl.DataFrame:
    """Every raw message the manifest names for the integration."""
    paths = [b.path for b in store.batches(integration)]
    if not paths:
        return pl.DataFrame(schema=pl.Schema(pl.from_arrow(RAW_MESSAGE_SCHEMA.empty_table()).schema))
    return pl.concat([pl.from_arrow(pq.read_table(p)) for p in paths])


def store_batch(
    store: RawStore, integration: str, tenant: str, kind, messages, partitions: int = 4, first_offset: int = 0
):
    """Writes simulated messages of one topic as a raw batch, as a drain would, without a broker.
    Each partition's offsets start at `first_offset`."""
    import pyarrow as pa

    chosen = [m for m in messages if m.kind is kind]
    next_offset: dict[int, int] = {}
    partition_ids, offsets = [], []
    for m in chosen:
        p = m.partition(partitions)
        partition_ids.append(p)
        offsets.append(next_offset.get(p, first_offset))
        next_offset[p] = offsets[-1] + 1
    table = pa.Table.from_pydict(
        {
            "topic": [kind.topic(tenant)] * len(chosen), "partition": partition_ids, "offset": offsets,
            "timestamp": [1_795_000_000_000_000] * len(chosen), "key": [m.key for m in chosen],
            "value": [m.value for m in chosen],
        },
        schema=RAW_MESSAGE_SCHEMA,
    )
    return store.commit_batch(integration, kind, kind.topic(tenant), table, next_offset)
