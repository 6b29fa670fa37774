"""Attribute state to profile rows, and new attributes to catalog rows: plain
polars, LazyFrame in, LazyFrame out. The steps over a chunk's every message
are SQL (`chunk_steps`)."""

from __future__ import annotations

from typing import Collection, Mapping

import polars as pl

from gig_etl.contract import (
    PROFILE_ATTRIBUTES,
    SUBSCRIPTION_CHANNELS,
    attribute_column,
)
from gig_etl.lib.identifiers import EXTRA_ATTRIBUTES

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


def profile_rows(
    state: pl.LazyFrame, integration: str, identifier: str, columns: Mapping[str, str], extra: Collection[str] = ()
) -> pl.LazyFrame:
    """`profiles` rows (values as text, typed on insert) from the attribute state of
    some customers: one per customer whose identifier is known. `columns` maps each
    gig_ column to the GiG name whose value it holds; the values of the names in
    `extra` go into EXTRA_ATTRIBUTES as (key, value) entries, null if none."""
    values = [
        pl.col("value").filter(pl.col("attribute") == name).first().alias(column) for column, name in columns.items()
    ]
    if extra:
        entries = pl.struct(key="attribute", value="value").filter(pl.col("attribute").is_in(list(extra)))
        values.append(entries.alias(EXTRA_ATTRIBUTES))
    wide = state.group_by("customer_id").agg(*values, pl.col("occurred_at").max().alias("updated_at"))
    if extra:
        wide = wide.with_columns(
            pl.when(pl.col(EXTRA_ATTRIBUTES).list.len() > 0).then(pl.col(EXTRA_ATTRIBUTES)).alias(EXTRA_ATTRIBUTES)
        )
    profile_id = pl.col("customer_id") if identifier == "customer_id" else pl.col(attribute_column(identifier))
    return (
        wide.with_columns(pl.lit(integration).alias("integration"), profile_id.alias("profile_id"))
        .filter(pl.col("profile_id").is_not_null())  # held back until the identifier arrives
    )


def subscription_rows(state: pl.LazyFrame, profiles: pl.LazyFrame) -> pl.LazyFrame:
    """Each profile's channel subscriptions, from its customers' subscription
    attributes: customers who share an identifier share a profile, whose channel
    then takes the newest value among them."""
    return (
        state.filter(pl.col("attribute").is_in(list(SUBSCRIPTION_CHANNELS)))
        .join(profiles.select("integration", "customer_id", "profile_id"), on="customer_id")
        .sort(NEWEST_LAST)
        .unique(["profile_id", "attribute"], keep="last")
        .select(
            "integration",
            "profile_id",
            pl.col("attribute").replace_strict(dict(SUBSCRIPTION_CHANNELS)).alias("channel"),
            (pl.col("value") == "true").alias("subscribed"),  # null: cleared, unknown
            pl.col("occurred_at").alias("updated_at"),
        )
    )
