from datetime import UTC, datetime

import polars as pl

from gig_etl.contract import TopicKind
from gig_etl.lib.transform import (
    OBSERVATION_SCHEMA,
    attribute_observations,
    first_of_each_message,
    new_attribute_types,
    newest_observations,
    profile_rows,
    subscription_rows,
    without_erased,
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


def newest_values(attribute: str, *messages) -> list[str]:
    """The newest of `attribute`'s values carried by messages (value, occurred day,
    partition, offset) about one customer, as one batch."""
    values, days, partitions, offsets = zip(*messages)
    batch = pl.LazyFrame(
        {"partition": partitions, "offset": offsets, "customer_id": ["1"] * len(messages),
         "occurred_at": [at(d) for d in days], "kafka_ts": [at(28)] * len(messages)},
        schema_overrides={"partition": pl.Int32},
    )
    fields = pl.LazyFrame(
        {"partition": partitions, "offset": offsets, "field": [attribute] * len(messages),
         "json_type": ["VARCHAR"] * len(messages), "value": values},
        schema_overrides={"partition": pl.Int32},
    )
    return newest_observations(attribute_observations(batch, fields, TopicKind.PROFILES)).collect()["value"].to_list()


def test_the_newest_occurred_at_wins_whatever_the_arrival_order():
    assert newest_values("vip_level", ("2", 10, 0, 1), ("5", 5, 0, 2)) == ["2"]


def test_on_equal_times_the_later_kafka_position_wins():
    assert newest_values("email", ("b", 5, 0, 9), ("a", 5, 0, 3), ("c", 5, 1, 2)) == ["c"]
    assert newest_values("email", ("b", 5, 0, 9), ("a", 5, 0, 3)) == ["b"]


def test_a_re_sent_message_is_kept_once_the_first_copy_in_partition_and_offset_order():
    messages = pl.LazyFrame({"message_id": ["m", "n", "m"], "partition": [1, 0, 0], "offset": [5, 1, 9]})
    assert first_of_each_message(messages).collect().rows() == [("n", 0, 1), ("m", 0, 9)]


def test_messages_about_erased_customers_are_dropped():
    messages = pl.LazyFrame({"customer_id": ["1", "2"], "x": [1, 2]})
    assert without_erased(messages, pl.LazyFrame({"customer_id": ["2"]})).collect()["x"].to_list() == [1]


def test_events_update_only_the_attributes_they_share_a_name_with():
    messages = pl.LazyFrame(
        {"partition": [0], "offset": [1], "customer_id": ["1"], "occurred_at": [at(1)], "kafka_ts": [at(2)]},
        schema_overrides={"partition": pl.Int32},
    )
    fields = pl.LazyFrame(
        {"partition": [0, 0], "offset": [1, 1], "field": ["real_balance", "win_amount"], "json_type": ["DOUBLE"] * 2,
         "value": ["5.5", "1"]},
        schema_overrides={"partition": pl.Int32},
    )
    assert attribute_observations(messages, fields, TopicKind.EVENTS).collect()["attribute"].to_list() == ["real_balance"]
    assert len(attribute_observations(messages, fields, TopicKind.PROFILES).collect()) == 2


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
