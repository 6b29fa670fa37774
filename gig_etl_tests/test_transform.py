from datetime import UTC, datetime

import polars as pl

from gig_etl.lib.transform import (
    OBSERVATION_SCHEMA,
    new_attribute_types,
    profile_rows,
    subscription_rows,
)


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


def test_profiles_are_held_back_until_their_identifier_is_known():
    state = pl.LazyFrame(
        {"customer_id": ["1", "1", "2"], "attribute": ["email", "allow_sms", "allow_sms"],
         "value": ["a@x.com", "true", None], "occurred_at": [at(1), at(2), at(3)], "kafka_ts": [at(4)] * 3,
         "partition": [0, 0, 1], "offset": [0, 1, 0]}
    )
    columns = {"gig_email": "email", "gig_allow_sms": "allow_sms"}
    by_email = profile_rows(state, "acme", "email", columns).collect()
    assert by_email.select("profile_id", "customer_id", "gig_allow_sms", "updated_at").rows() == [
        ("a@x.com", "1", "true", at(2))
    ]
    by_customer = profile_rows(state, "acme", "customer_id", columns).collect().sort("customer_id")
    assert by_customer["profile_id"].to_list() == ["1", "2"]
    subscriptions = subscription_rows(state, by_customer.lazy()).collect().sort("profile_id")
    assert subscriptions.select("profile_id", "channel", "subscribed").rows() == [("1", "sms", True), ("2", "sms", None)]
    # Both customers in one profile: its channel takes the newer value.
    one_profile = by_customer.with_columns(profile_id=pl.lit("shared"))
    shared = subscription_rows(state, one_profile.lazy()).collect()
    assert shared.select("profile_id", "channel", "subscribed", "updated_at").rows() == [("shared", "sms", None, at(3))]


def test_names_with_no_column_of_their_own_keep_their_values_in_the_map():
    state = pl.LazyFrame(
        {"customer_id": ["1", "1", "1", "2"], "attribute": ["email", "Email", 'x"; DROP TABLE events; --', "email"],
         "value": ["a@x.com", "A@X.COM", "1", "b@x.com"], "occurred_at": [at(1)] * 4, "kafka_ts": [at(4)] * 4,
         "partition": [0] * 4, "offset": [0, 1, 2, 3]}
    )
    rows = profile_rows(
        state, "acme", "customer_id", {"gig_email": "email"}, ["Email", 'x"; DROP TABLE events; --']
    ).collect().sort("customer_id")
    assert rows["gig_email"].to_list() == ["a@x.com", "b@x.com"]
    extra = [sorted((e["key"], e["value"]) for e in entries) if entries is not None else None for entries in rows["extra_attributes"]]
    assert extra == [[("Email", "A@X.COM"), ('x"; DROP TABLE events; --', "1")], None]
