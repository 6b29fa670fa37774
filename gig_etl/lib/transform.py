"""New attributes to catalog rows: plain polars, LazyFrame in, LazyFrame out.
The steps over a chunk's every message, and the profile and subscription rows
built from them, are SQL (`chunk_steps`)."""

from __future__ import annotations

import polars as pl

from gig_etl.contract import PROFILE_ATTRIBUTES

# The order in which two values of one attribute are compared: the newer
# occurred_at wins; on a tie, the later Kafka position.
NEWEST_LAST = ["occurred_at", "kafka_ts", "partition", "offset"]

# The DuckDB type a new attribute's first JSON values suggest; any conflict widens
# to VARCHAR, as does an integer past BIGINT (`_inferred_type`).
_INFERRED_TYPES = {
    "VARCHAR": "VARCHAR", "BOOLEAN": "BOOLEAN", "UBIGINT": "BIGINT", "BIGINT": "BIGINT",
    "HUGEINT": "VARCHAR", "DOUBLE": "DOUBLE", "ARRAY": "JSON", "OBJECT": "JSON",
}

OBSERVATION_SCHEMA = pl.Schema(
    {
        "customer_id": pl.String,
        "attribute": pl.String,
        "json_type": pl.String,
        "value": pl.String,
        "occurred_at": pl.Datetime("us", "UTC"),
        "kafka_ts": pl.Datetime("us", "UTC"),
        "partition": pl.Int32,
        "offset": pl.Int64,
        "newness": pl.UInt32,  # its message's rank in NEWEST_LAST order within the chunk
    }
)


def new_attribute_types(observations: pl.LazyFrame, integration: str) -> pl.LazyFrame:
    """Catalog rows for attributes the contract does not know, with the type their
    values suggest (VARCHAR where they disagree or are only null)."""
    unknown = observations.filter(~pl.col("attribute").is_in(list(PROFILE_ATTRIBUTES)))
    return unknown.group_by("attribute").agg(
        _inferred_type().filter(pl.col("json_type") != "NULL").unique().alias("types"),
        pl.col("occurred_at").min().alias("created_at"),
    ).select(
        pl.lit(integration).alias("integration"),
        pl.format("gig_{}", "attribute").alias("attribute"),
        pl.when(pl.col("types").list.len() == 1).then(pl.col("types").list.first()).otherwise(pl.lit("VARCHAR"))
        .alias("data_type"),
        "created_at",
    )


def _inferred_type() -> pl.Expr:
    """The column type one value suggests: a UBIGINT past BIGINT's range would not load as BIGINT."""
    inferred = pl.col("json_type").replace_strict(_INFERRED_TYPES, default="VARCHAR")
    past_bigint = (pl.col("json_type") == "UBIGINT") & pl.col("value").cast(pl.Int64, strict=False).is_null()
    return pl.when(past_bigint).then(pl.lit("VARCHAR")).otherwise(inferred)
