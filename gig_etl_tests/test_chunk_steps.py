"""The set-based steps of a chunk's load (`chunk_steps`), each on a DuckDB of
its own holding only the relations it reads."""

from datetime import UTC, datetime

import duckdb
import polars as pl
import pytest

from gig_etl.contract import TopicKind
from gig_etl.lib import chunk_steps
from gig_etl.lib.warehouse import sql_text


def at(day: int) -> datetime:
    return datetime(2026, 11, day, tzinfo=UTC)


@pytest.fixture
def db():
    with duckdb.connect() as connection:
        connection.execute(sql_text("macros.sql")).fetchall()
        connection.execute(
            "CREATE TABLE seen_messages (integration VARCHAR, message_hash_upper UBIGINT, message_hash_lower UBIGINT)"
        ).fetchall()
        connection.register("chunk_integration", pl.DataFrame({"integration": ["acme"]}).to_arrow())
        connection.register("erased_customer_ids", pl.DataFrame({"customer_id": []}, schema={"customer_id": pl.String}).to_arrow())
        yield connection


def chunk(db, messages: list[dict], fields: list[dict] = ()) -> None:
    """Registers the chunk's messages (message_id, customer_id, occurred day,
    partition, offset; type and data optional) and fields."""
    frame = pl.DataFrame(
        [
            {"topic": "t", "partition": m["partition"], "offset": m["offset"], "kafka_ts": at(28),
             "message_id": m["message_id"], "customer_id": m.get("customer_id", "1"), "type": m.get("type", "profile"),
             "occurred_at": at(m.get("day", 1)), "data": "{}", "batch": 0}
            for m in messages
        ],
        schema_overrides={"partition": pl.Int32, "batch": pl.Int32},
    )
    db.register("chunk_messages", frame.with_row_index("row").to_arrow())
    db.register("chunk_fields", pl.DataFrame(
        list(fields), schema={"partition": pl.Int32, "offset": pl.Int64, "field": pl.String, "json_type": pl.String, "value": pl.String},
    ).to_arrow())


def kept(db) -> list[tuple]:
    chunk_steps.unique_messages(db)
    chunk_steps.new_messages(db, "acme")
    chunk_steps.kept_messages(db)
    return db.execute('SELECT message_id, "partition", "offset" FROM kept_messages ORDER BY ALL').fetchall()


def newest(db, attribute: str, *messages) -> list[str]:
    """The newest of `attribute`'s values carried by messages (value, occurred
    day, partition, offset) about one customer, loaded together."""
    chunk(
        db,
        [{"message_id": f"m{i}", "day": d, "partition": p, "offset": o} for i, (_, d, p, o) in enumerate(messages)],
        [{"partition": p, "offset": o, "field": attribute, "json_type": "VARCHAR", "value": v} for v, _, p, o in messages],
    )
    kept(db)
    chunk_steps.observations(db, TopicKind.PROFILES)
    chunk_steps.newest_values(db)
    return [v for (v,) in db.execute("SELECT value FROM newest_values").fetchall()]


def test_the_newest_occurred_at_wins_whatever_the_arrival_order(db):
    assert newest(db, "vip_level", ("2", 10, 0, 1), ("5", 5, 0, 2)) == ["2"]


def test_on_equal_times_the_later_kafka_position_wins(db):
    assert newest(db, "email", ("b", 5, 0, 9), ("a", 5, 0, 3), ("c", 5, 1, 2)) == ["c"]
    assert newest(db, "email", ("b", 5, 0, 9), ("a", 5, 0, 3)) == ["b"]


def test_a_re_sent_message_is_kept_once_the_first_copy_in_partition_and_offset_order(db):
    chunk(db, [{"message_id": "m", "partition": 1, "offset": 5}, {"message_id": "n", "partition": 0, "offset": 1},
               {"message_id": "m", "partition": 0, "offset": 9}])
    assert kept(db) == [("m", 0, 9), ("n", 0, 1)]


def test_a_message_seen_before_is_not_new_and_its_copy_is_known(db):
    db.execute("INSERT INTO seen_messages SELECT 'acme', message_hash_upper('m'), message_hash_lower('m')").fetchall()
    db.execute("INSERT INTO seen_messages SELECT 'other', message_hash_upper('n'), message_hash_lower('n')").fetchall()
    chunk(db, [{"message_id": "m", "partition": 0, "offset": 1}, {"message_id": "n", "partition": 0, "offset": 2}])
    assert kept(db) == [("n", 0, 2)]
    assert db.execute("SELECT * FROM seen_copies").fetchall() == [("m", 0, 1)]
    assert chunk_steps.message_counts(db) == (1, 1, 1)  # new, kept, seen


def test_messages_about_erased_customers_are_dropped(db):
    db.register("erased_customer_ids", pl.DataFrame({"customer_id": ["2"]}).to_arrow())
    chunk(db, [{"message_id": "a", "customer_id": "1", "partition": 0, "offset": 1},
               {"message_id": "b", "customer_id": "2", "partition": 0, "offset": 2}])
    assert kept(db) == [("a", 0, 1)]
    assert chunk_steps.message_counts(db) == (2, 1, 0)


def test_events_update_only_the_attributes_they_share_a_name_with(db):
    chunk(db, [{"message_id": "e", "type": "bonus", "partition": 0, "offset": 1}], [
        {"partition": 0, "offset": 1, "field": "real_balance", "json_type": "DOUBLE", "value": "5.5"},
        {"partition": 0, "offset": 1, "field": "win_amount", "json_type": "DOUBLE", "value": "1"},
    ])
    kept(db)
    chunk_steps.observations(db, TopicKind.EVENTS)
    assert db.execute("SELECT attribute FROM observations").fetchall() == [("real_balance",)]
    chunk_steps.observations(db, TopicKind.PROFILES)
    assert db.execute("SELECT count(*) FROM observations").fetchall() == [(2,)]


def test_an_event_is_named_after_its_type_and_takes_its_customers_profile_id(db):
    chunk(db, [{"message_id": "e1", "type": "bonus", "customer_id": "1", "partition": 0, "offset": 1},
               {"message_id": "e2", "type": "brand_new_thing", "customer_id": "2", "partition": 0, "offset": 2}])
    kept(db)
    db.register("chunk_profile_ids", pl.DataFrame({"customer_id": ["1"], "profile_id": ["p1"]}).to_arrow())
    chunk_steps.new_events(db)
    assert db.execute(
        "SELECT integration, event_id, event_name, profile_id, kafka_offset FROM new_events ORDER BY event_id"
    ).fetchall() == [("acme", "e1", "Bonus", "p1", 1), ("acme", "e2", "brand_new_thing", None, 2)]


def state(db, relation: str, rows: list[tuple]) -> None:
    """Registers attribute state (customer, attribute, value, occurred day, partition, offset) as `relation`."""
    db.register(relation, pl.DataFrame(
        [
            {"customer_id": c, "attribute": a, "value": v, "occurred_at": at(d), "kafka_ts": at(28), "partition": p, "offset": o}
            for c, a, v, d, p, o in rows
        ],
        schema={"customer_id": pl.String, "attribute": pl.String, "value": pl.String, "occurred_at": pl.Datetime("us", "UTC"),
                "kafka_ts": pl.Datetime("us", "UTC"), "partition": pl.Int32, "offset": pl.Int64},
    ).to_arrow())


def test_profiles_are_held_back_until_their_identifier_is_known_and_shared_ones_take_the_newest_channel(db):
    rows = [("1", "email", "a@x.com", 1, 0, 0), ("1", "allow_sms", "true", 2, 0, 1), ("2", "allow_sms", None, 3, 1, 0)]
    state(db, "profile_state", rows)
    state(db, "subscription_state", rows[1:])
    columns = {"gig_email": ("email", "VARCHAR"), "gig_allow_sms": ("allow_sms", "BOOLEAN")}
    chunk_steps.refreshed_profiles(db, "email", columns)
    assert db.execute(
        "SELECT integration, profile_id, customer_id, gig_allow_sms, updated_at FROM refreshed_profiles"
    ).fetchall() == [("acme", "a@x.com", "1", True, at(2))]
    chunk_steps.refreshed_profiles(db, "customer_id", columns)
    assert db.execute("SELECT profile_id, gig_email FROM refreshed_profiles ORDER BY 1").fetchall() == [
        ("1", "a@x.com"), ("2", None)
    ]

    def subscriptions(holders: list[tuple]) -> list[tuple]:
        db.register("subscription_holders", pl.DataFrame(
            holders, schema=["customer_id", "profile_id"], orient="row"
        ).with_columns(integration=pl.lit("acme")).to_arrow())
        chunk_steps.refreshed_subscriptions(db)
        return db.execute(
            "SELECT integration, profile_id, channel, subscribed, updated_at FROM refreshed_subscriptions ORDER BY ALL"
        ).fetchall()

    assert subscriptions([("1", "1"), ("2", "2")]) == [("acme", "1", "sms", True, at(2)), ("acme", "2", "sms", None, at(3))]
    # Both customers in one profile: its channel takes the newer value.
    assert subscriptions([("1", "shared"), ("2", "shared")]) == [("acme", "shared", "sms", None, at(3))]


def test_names_with_no_column_of_their_own_keep_their_values_in_the_map_and_values_take_their_columns_type(db):
    hostile = 'x"; DROP TABLE events; --'
    state(db, "profile_state", [
        ("1", "email", "a@x.com", 1, 0, 0), ("1", "Email", "A@X.COM", 1, 0, 1), ("1", hostile, "1", 1, 0, 2),
        ("1", "tags", '["a", "b"]', 1, 0, 3), ("1", "registered_at", "2026-11-01t10:00:00z", 1, 0, 4),
        ("2", "email", "b@x.com", 1, 0, 5),
    ])
    columns = {
        "gig_email": ("email", "VARCHAR"), "gig_tags": ("tags", "VARCHAR[]"),
        "gig_registered_at": ("registered_at", "TIMESTAMP WITH TIME ZONE"),
    }
    chunk_steps.refreshed_profiles(db, "customer_id", columns, ["Email", hostile])
    rows = db.execute(
        "SELECT customer_id, gig_email, gig_tags, gig_registered_at, extra_attributes FROM refreshed_profiles ORDER BY 1"
    ).fetchall()
    assert rows == [
        ("1", "a@x.com", ["a", "b"], datetime(2026, 11, 1, 10, tzinfo=UTC), {"Email": "A@X.COM", hostile: "1"}),
        ("2", "b@x.com", None, None, None),
    ]
