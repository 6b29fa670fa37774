from datetime import UTC, datetime

import polars as pl

from gig_etl.lib.transform import OBSERVATION_SCHEMA, new_attribute_types


def at(day: int) -> datetime:
    return datetime(2026, 11, day, tzinfo=UTC)


def observations(*rows) -> pl.LazyFrame:
    """(customer, attribute, json_type, value, occurred day, offset)"""
    return pl.DataFrame(
        [
            {"customer_id": c, "attribute": a, "json_type": t, "value": v, "occurred_at": at(d), "kafka_ts": at(28),
             "partition": 0, "offset": o, "newness": o}
            for c, a, t, v, d, o in rows
        ],
        schema=OBSERVATION_SCHEMA,
    ).lazy()


def test_new_attributes_get_a_type_widened_to_varchar_on_conflict():
    rows = observations(
        ("1", "loyalty_tier", "VARCHAR", "gold", 1, 1),
        ("1", "lucky_number", "UBIGINT", "7", 2, 2), ("2", "lucky_number", "VARCHAR", "seven", 1, 3),
        ("1", "flag", "BOOLEAN", "true", 1, 4), ("1", "only_null", "NULL", None, 1, 5),
        ("1", "vip_level", "UBIGINT", "3", 1, 6),  # known: not a new attribute
    )
    catalog = new_attribute_types(rows, "acme").collect().sort("attribute")
    assert catalog.select("attribute", "data_type", "created_at").rows() == [
        ("gig_flag", "BOOLEAN", at(1)), ("gig_loyalty_tier", "VARCHAR", at(1)),
        ("gig_lucky_number", "VARCHAR", at(1)), ("gig_only_null", "VARCHAR", at(1)),
    ]
