import pytest

from gig_etl.contract import TopicKind
from gig_etl.lib import load as load_module
from gig_etl.lib.home import raw_root
from gig_etl.lib.load import INTEGRATION_TABLES, LoadCounts, load_integration
from gig_etl.lib.raw_store import RawStore
from gig_etl.lib.warehouse import connect_warehouse, embedded_lake
from gig_etl.simulate import generate_traffic
from gig_etl_tests.pipeline import register
from gig_etl_tests.raw_helpers import store_batch


@pytest.fixture
def loaded_setup(tmp_path):
    integration = register(tmp_path, "it", "acme", "b:1")
    store = RawStore(raw_root(tmp_path))
    messages = list(generate_traffic("acme", 150, seed=2, chaos=0.05))
    store_batch(store, "it", "acme", TopicKind.PROFILES, messages)
    return integration, store, connect_warehouse(embedded_lake(tmp_path)), messages


def everything(db, differing: dict[str, str] | None = None) -> dict:
    """Every row of every table, without the `differing` columns of the tables named."""
    differing = differing or {}
    return {
        t: db.execute(
            f"SELECT * {f'EXCLUDE ({differing[t]})' if t in differing else ''} FROM {t} ORDER BY ALL"
        ).fetchall()
        for t in INTEGRATION_TABLES
    }


def test_a_batch_that_fails_half_way_leaves_the_warehouse_as_it_was(loaded_setup, monkeypatch):
    integration, store, db, messages = loaded_setup
    first = load_integration(db, store, integration).total
    assert first.batches == 1
    store_batch(store, "it", "acme", TopicKind.EVENTS, messages)
    before = everything(db)

    def crash(*args, **kwargs):
        raise RuntimeError("killed half way")

    # By now the batch has written seen_messages, attribute_state, profiles, events.
    monkeypatch.setattr(load_module, "_add_to_event_catalog", crash)
    with pytest.raises(RuntimeError, match="killed half way"):
        load_integration(db, store, integration)
    assert everything(db) == before

    monkeypatch.undo()
    second = load_integration(db, store, integration).total
    assert second.batches == 1 and second.rows == sum(m.kind is TopicKind.EVENTS for m in messages)
    assert second.loaded + second.duplicates + second.quarantined == second.rows
    assert db.execute("SELECT count(*) FROM events").fetchall()[0][0] > 0


def test_a_batch_whose_every_message_the_warehouse_refuses_is_quarantined_whole(tmp_path, monkeypatch):
    import duckdb

    from gig_etl.simulate import envelope, message

    integration = register(tmp_path, "it", "acme", "b:1")
    store = RawStore(raw_root(tmp_path))
    store_batch(store, "it", "acme", TopicKind.PROFILES, [
        message(TopicKind.PROFILES, c, envelope("acme", c, "profile", "2026-11-01T10:00:00Z", {"vip_level": 1}, f"m-{c}"))
        for c in ("1", "2", "3")
    ])
    apply_chunk = load_module._apply_chunk

    def refusing(db, integration, chunk, *args):
        if chunk.parsed.messages.height:
            raise duckdb.ConversionException("Conversion Error: refused")
        return apply_chunk(db, integration, chunk, *args)

    monkeypatch.setattr(load_module, "_apply_chunk", refusing)
    with connect_warehouse(embedded_lake(tmp_path)) as db:
        counts = load_integration(db, store, integration).total
        assert (counts.rows, counts.loaded, counts.quarantined_by_reason) == (3, 0, {"refused": 3})
        assert db.execute("SELECT key, reason FROM quarantine ORDER BY key").fetchall() == [
            (key, "the warehouse cannot hold it: ConversionException: Conversion Error: refused") for key in (b"1", b"2", b"3")
        ]


def test_a_customer_id_with_a_nul_loads_and_erases_like_any_other(tmp_path):
    # The lookups' customer range goes to DuckLake as constants, which it writes
    # into its catalog query as text: a NUL there once failed the whole load.
    from gig_etl.simulate import envelope, message

    integration = register(tmp_path, "it", "acme", "b:1")
    store = RawStore(raw_root(tmp_path))

    def change(customer: str, day: int) -> object:
        sent = envelope("acme", customer, "profile", f"2026-11-{day:02}T10:00:00Z", {"vip_level": day}, f"m-{customer}-{day}")
        return message(TopicKind.PROFILES, customer, sent)

    with connect_warehouse(embedded_lake(tmp_path)) as db:
        store_batch(store, "it", "acme", TopicKind.PROFILES, [change("c\x00", 1), change("c1", 1)])
        load_integration(db, store, integration)
        store_batch(store, "it", "acme", TopicKind.PROFILES, [change("c\x00", 2), change("c1", 2)])
        load_integration(db, store, integration)
        assert db.execute("SELECT customer_id, gig_vip_level FROM profiles ORDER BY 1").fetchall() == [("c\x00", 2), ("c1", 2)]
        store_batch(store, "it", "acme", TopicKind.PROFILES, [message(TopicKind.PROFILES, "c\x00", None)])
        assert load_integration(db, store, integration).total.erasures == 1
        assert db.execute("SELECT customer_id FROM profiles").fetchall() == [("c1",)]


def test_events_of_a_customer_id_with_a_nul_follow_its_profile_id(tmp_path):
    from gig_etl.simulate import envelope, message

    integration = register(tmp_path, "it", "acme", "b:1", identifier="email")
    store = RawStore(raw_root(tmp_path))

    def load(kind: TopicKind, day: int, data: dict) -> list[tuple]:
        kind_type = "profile" if kind is TopicKind.PROFILES else "game_activity"
        sent = envelope("acme", "c\x00", kind_type, f"2026-11-{day:02}T10:00:00Z", data, f"m-{day}")
        store_batch(store, "it", "acme", kind, [message(kind, "c\x00", sent)])
        load_integration(db, store, integration)
        return db.execute("SELECT profile_id FROM events").fetchall()

    with connect_warehouse(embedded_lake(tmp_path)) as db:
        assert load(TopicKind.EVENTS, 1, {"game": "slots"}) == [(None,)]
        assert load(TopicKind.PROFILES, 2, {"email": "one@x.com"}) == [("one@x.com",)]
        assert load(TopicKind.PROFILES, 3, {"email": "two@x.com"}) == [("two@x.com",)]


def test_an_event_re_sent_on_another_partition_keeps_one_position_whatever_the_load_order(tmp_path):
    from gig_etl.simulate import SimulatedMessage, envelope, message

    original = message(TopicKind.EVENTS, "7", envelope("acme", "7", "bonus", "2026-11-20T10:00:00Z", {"bonus_id": "b"}, "m-1"))
    copy = SimulatedMessage(original.kind, original.key, original.value, partition_shift=1, event_type="bonus")
    tables = []
    for order in ([copy], [original]), ([original], [copy]):
        home = tmp_path / str(len(tables))
        integration = register(home, "it", "acme", "b:1")
        store = RawStore(raw_root(home))
        for batch in order:
            store_batch(store, "it", "acme", TopicKind.EVENTS, batch)
        with connect_warehouse(embedded_lake(home)) as db:
            load_integration(db, store, integration)
            tables.append(db.execute('SELECT event_id, kafka_partition, kafka_offset FROM events').fetchall())
    assert tables[0] == tables[1] == [("m-1", original.partition(4), 0)]


def test_the_event_catalog_merged_batch_by_batch_is_what_the_events_held_give(tmp_path):
    integration = register(tmp_path, "it", "acme", "b:1")
    store = RawStore(raw_root(tmp_path))
    messages = list(generate_traffic("acme", 300, seed=7, chaos=0.05))
    # Small batches, all the events loaded first: the erasures in the profiles,
    # loaded next, then take out events the catalog has counted.
    size = 2_000
    with connect_warehouse(embedded_lake(tmp_path)) as db:
        load = LoadCounts()
        for kind in (TopicKind.EVENTS, TopicKind.PROFILES):
            for start in range(0, len(messages), size):
                store_batch(store, "it", "acme", kind, messages[start:start + size], first_offset=start)
            load += load_integration(db, store, integration, chunk_messages=size).total
        catalog = db.execute("SELECT * FROM event_catalog ORDER BY ALL").fetchall()
        recounted = db.execute(
            "SELECT integration, event_type, any_value(event_name), min(occurred_at), max(occurred_at), count(*) "
            "FROM events GROUP BY ALL ORDER BY ALL"
        ).fetchall()
    assert load.batches > 10 and load.erasures > 0 and load.duplicates > 0
    assert len(catalog) > 12  # the twelve, and the unknown types chaos sends
    assert catalog == recounted


def test_batches_loaded_together_give_the_rows_they_give_one_by_one(tmp_path):
    messages = list(generate_traffic("acme", 150, seed=11, chaos=0.05))
    loads, tables = [], []
    for chunk_messages in (1, 10**9):  # each batch alone; all of a topic's in one transaction
        home = tmp_path / str(chunk_messages)
        integration = register(home, "it", "acme", "b:1")
        store = RawStore(raw_root(home))
        for start in range(0, len(messages), 1_000):
            for kind in TopicKind:
                store_batch(store, "it", "acme", kind, messages[start:start + 1_000], first_offset=start)
        with connect_warehouse(embedded_lake(home)) as db:
            loads.append(load_integration(db, store, integration, chunk_messages=chunk_messages).total)
            tables.append(everything(db, differing={
                # Batch ids and load times differ, and so does the batch a copy
                # re-sent in another batch counts as a duplicate in: one by one,
                # the copy loaded first is kept; together, the first in (partition,
                # offset) order. The sums are the loads', compared above.
                "loaded_batches": "batch_id, loaded_at, loaded, duplicates",
                # Which copy holds a value: they say the same.
                "attribute_state": '"partition", "offset"',
                # Catalogued on first load, contract attributes are dated then.
                "attribute_catalog": "created_at",
            }))
    alone, together = loads
    assert alone.batches > 10 and alone.erasures > 0 and alone.duplicates > 0 and alone.quarantined > 0
    assert together == alone
    assert tables[0] == tables[1]


def test_values_at_the_edge_of_the_warehouse_types_load_or_are_quarantined_never_failing_the_batch(tmp_path):
    from datetime import datetime, timezone

    from gig_etl.simulate import envelope, message

    integration = register(tmp_path, "it", "acme", "b:1")
    store = RawStore(raw_root(tmp_path))
    profiles = [
        # RFC 3339's other spellings: each loads as the instant it names.
        envelope("acme", "1", "profile", "2026-11-20 10:00:00z", {"last_login_at": "2026-11-19t08:30:00z"}, "m-1"),
        # Past BIGINT: a known attribute's value is quarantined, a new attribute's column is text.
        envelope("acme", "2", "profile", "2026-11-20T10:00:00Z", {"deposit_count": 2**63}, "m-2"),
        envelope("acme", "3", "profile", "2026-11-20T10:00:00Z", {"lucky_number": 2**64 - 1}, "m-3"),
        envelope("acme", "4", "profile", "2026-11-20T10:00:00Z", {"real_balance": 1e300}, "m-4"),
        envelope("acme", "5", "profile", "2026-02-30T10:00:00Z", {"first_name": "Ann"}, "m-5"),
    ]
    store_batch(store, "it", "acme", TopicKind.PROFILES, [message(TopicKind.PROFILES, p["customer_id"], p) for p in profiles])
    event = envelope("acme", "1", "bonus", "2026-11-21 09:00:00Z", {"bonus_id": "b"}, "m-6")
    store_batch(store, "it", "acme", TopicKind.EVENTS, [message(TopicKind.EVENTS, "1", event)])
    with connect_warehouse(embedded_lake(tmp_path)) as db:
        load = load_integration(db, store, integration).total
        logins = db.execute("SELECT customer_id, gig_last_login_at, gig_lucky_number FROM profiles ORDER BY ALL").fetchall()
        [(lucky_type,)] = db.execute(
            "SELECT data_type FROM duckdb_columns() WHERE table_name = 'profiles' AND column_name = 'gig_lucky_number'"
        ).fetchall()
        [(occurred,)] = db.execute("SELECT occurred_at FROM events").fetchall()
        reasons = [r for (r,) in db.execute("SELECT reason FROM quarantine ORDER BY ALL").fetchall()]
    assert (load.loaded, load.quarantined) == (3, 3)
    assert logins == [
        ("1", datetime(2026, 11, 19, 8, 30, tzinfo=timezone.utc), None), ("3", None, str(2**64 - 1)),
    ]
    assert lucky_type == "VARCHAR"
    assert occurred == datetime(2026, 11, 21, 9, tzinfo=timezone.utc)
    assert reasons == [
        "deposit_count '9223372036854775808' is out of range for BIGINT",
        "occurred_at '2026-02-30T10:00:00Z' is not an RFC 3339 time",
        "real_balance '1e300' is out of range for DECIMAL(18,4)",
    ]


def test_an_erasure_interrupted_between_the_warehouse_and_raw_is_finished_by_the_next_load(tmp_path):
    from gig_etl.lib.load import Erasures, load_batch, read_batch
    from gig_etl.simulate import envelope, message
    from gig_etl_tests.raw_helpers import raw_messages

    integration = register(tmp_path, "it", "acme", "b:1")
    store = RawStore(raw_root(tmp_path))
    profile = envelope("acme", "7", "profile", "2026-11-20T10:00:00Z", {"first_name": "Ann"})
    late = envelope("acme", "7", "profile", "2026-11-19T10:00:00Z", {"last_name": "Lee"})
    with connect_warehouse(embedded_lake(tmp_path)) as db:
        store_batch(store, "it", "acme", TopicKind.PROFILES, [message(TopicKind.PROFILES, "7", profile)])
        load_integration(db, store, integration)
        # The tombstone's batch commits in the warehouse, then the process dies
        # before the raw files are rewritten: `load_batch` alone is that state.
        erasure = store_batch(store, "it", "acme", TopicKind.PROFILES, [message(TopicKind.PROFILES, "7", None)])
        load_batch(db, store, integration, read_batch(erasure, "acme"), Erasures.of(store, "it"))
        assert raw_messages(store, "it")["value"].is_not_null().sum() == 1
        load_integration(db, store, integration)
        assert raw_messages(store, "it")["value"].to_list() == [None]

        # A late message about the erased customer, loaded, then the same crash.
        late_batch = store_batch(store, "it", "acme", TopicKind.PROFILES, [message(TopicKind.PROFILES, "7", late)])
        load_batch(db, store, integration, read_batch(late_batch, "acme"), Erasures.of(store, "it"))
        assert raw_messages(store, "it")["value"].is_not_null().sum() == 1
        load_integration(db, store, integration)
        assert raw_messages(store, "it")["value"].to_list() == [None]


def test_customers_sharing_an_identifier_share_a_profile_whose_channels_take_the_newest_value(tmp_path):
    from gig_etl.simulate import envelope, message

    integration = register(tmp_path, "it", "acme", "b:1", identifier="email")
    store = RawStore(raw_root(tmp_path))

    def load(customer: str, day: int, data: dict) -> list[tuple]:
        change = envelope("acme", customer, "profile", f"2026-11-{day:02}T10:00:00Z", data, f"m-{customer}-{day}")
        store_batch(store, "it", "acme", TopicKind.PROFILES, [message(TopicKind.PROFILES, customer, change)])
        load_integration(db, store, integration)
        return db.execute("SELECT profile_id, channel, subscribed FROM subscriptions ORDER BY ALL").fetchall()

    with connect_warehouse(embedded_lake(tmp_path)) as db:
        assert load("1", 20, {"email": "twin@x.com", "allow_sms": True}) == [("twin@x.com", "sms", True)]
        # An older value from the second customer of the profile does not win...
        assert load("2", 19, {"email": "twin@x.com", "allow_sms": False}) == [("twin@x.com", "sms", True)]
        # ...a newer one does.
        assert load("2", 21, {"allow_sms": False}) == [("twin@x.com", "sms", False)]
        # The first customer moves to another email: each profile keeps its own customer's value.
        assert load("1", 22, {"email": "solo@x.com"}) == [("solo@x.com", "sms", True), ("twin@x.com", "sms", False)]
        # One batch holding both customers of a profile (a primary key once failed the load here).
        both = [
            message(TopicKind.PROFILES, c, envelope("acme", c, "profile", f"2026-11-{d}T10:00:00Z", {"email": "pair@x.com", "allow_push": True}, f"p-{c}"))
            for c, d in (("3", 23), ("4", 24))
        ]
        store_batch(store, "it", "acme", TopicKind.PROFILES, both)
        load_integration(db, store, integration)
        assert db.execute("SELECT count(*) FROM subscriptions WHERE profile_id = 'pair@x.com'").fetchall() == [(1,)]


def test_events_follow_their_customers_profile_id_as_the_identifier_arrives_changes_and_is_cleared(tmp_path):
    from gig_etl.simulate import envelope, message

    integration = register(tmp_path, "it", "acme", "b:1", identifier="email")
    store = RawStore(raw_root(tmp_path))

    def load(kind: TopicKind, customer: str, day: int, data: dict) -> list[tuple]:
        kind_type = "profile" if kind is TopicKind.PROFILES else "game_activity"
        sent = envelope("acme", customer, kind_type, f"2026-11-{day:02}T10:00:00Z", data, f"m-{customer}-{day}")
        store_batch(store, "it", "acme", kind, [message(kind, customer, sent)])
        load_integration(db, store, integration)
        return db.execute("SELECT customer_id, profile_id FROM events ORDER BY occurred_at").fetchall()

    with connect_warehouse(embedded_lake(tmp_path)) as db:
        assert load(TopicKind.PROFILES, "1", 1, {"email": "one@x.com"}) == []
        # Customer 2's event waits for an identifier; customer 1's has its profile at once.
        assert load(TopicKind.EVENTS, "2", 2, {"game": "slots"}) == [("2", None)]
        assert load(TopicKind.EVENTS, "1", 3, {"game": "slots"}) == [("2", None), ("1", "one@x.com")]
        assert load(TopicKind.PROFILES, "2", 4, {"email": "two@x.com"}) == [("2", "two@x.com"), ("1", "one@x.com")]
        assert load(TopicKind.PROFILES, "1", 5, {"email": "new@x.com"}) == [("2", "two@x.com"), ("1", "new@x.com")]
        assert load(TopicKind.PROFILES, "2", 6, {"email": None}) == [("2", None), ("1", "new@x.com")]
        assert load(TopicKind.PROFILES, "2", 7, {"email": "back@x.com"}) == [("2", "back@x.com"), ("1", "new@x.com")]


def test_an_audience_holds_only_profiles_known_to_be_marketable(tmp_path):
    # Before, a status never sent counted as "not blocked", "not a test account".
    from gig_etl.simulate import envelope, message

    known = {"is_blocked": False, "is_test_account": False, "self_excluded_until": None, "allow_email": True}
    profiles = {
        "known": known,
        "excluded_until_past": known | {"self_excluded_until": "2020-01-01T00:00:00Z"},
        "blocked_unknown": {k: v for k, v in known.items() if k != "is_blocked"},
        "test_unknown": {k: v for k, v in known.items() if k != "is_test_account"},
        "exclusion_unknown": {k: v for k, v in known.items() if k != "self_excluded_until"},
        "excluded": known | {"self_excluded_until": "2999-01-01T00:00:00Z"},
        "unsubscribed": known | {"allow_email": False},
    }
    integration = register(tmp_path, "it", "acme", "b:1")
    store = RawStore(raw_root(tmp_path))
    sent = [message(TopicKind.PROFILES, c, envelope("acme", c, "profile", "2026-11-20T10:00:00Z", data)) for c, data in profiles.items()]
    store_batch(store, "it", "acme", TopicKind.PROFILES, sent)
    with connect_warehouse(embedded_lake(tmp_path)) as db:
        load_integration(db, store, integration)
        audience = db.execute("SELECT profile_id, channel FROM marketable_profiles ORDER BY ALL").fetchall()
    assert audience == [("excluded_until_past", "email"), ("known", "email")]


def test_player_value_never_adds_money_across_currencies(tmp_path):
    from datetime import UTC, datetime, timedelta

    from gig_etl.contract import PROFILE_MESSAGE_TYPE
    from gig_etl.simulate import envelope, format_timestamp, message

    integration = register(tmp_path, "it", "acme", "b:1")
    store = RawStore(raw_root(tmp_path))
    day_ago = format_timestamp(datetime.now(UTC) - timedelta(days=1))

    def deposit(customer: str, payment: str, amount: float, currency: str):
        data = {"payment_id": payment, "amount": amount, "currency": currency, "payment_method": "card", "status": "approved"}
        return message(TopicKind.EVENTS, customer, envelope("acme", customer, "payment_deposit", day_ago, data))

    profiles = [
        message(TopicKind.PROFILES, c, envelope("acme", c, PROFILE_MESSAGE_TYPE, day_ago, {"currency": currency}))
        for c, currency in (("1", "EUR"), ("2", "NOK"))
    ]
    store_batch(store, "it", "acme", TopicKind.PROFILES, profiles)
    store_batch(store, "it", "acme", TopicKind.EVENTS,
                [deposit("1", "p1", 100, "EUR"), deposit("1", "p2", 50, "BRL"), deposit("1", "p3", 25, "EUR")])
    with connect_warehouse(embedded_lake(tmp_path)) as db:
        load_integration(db, store, integration)
        rows = db.execute(
            "SELECT profile_id, currency, deposits_7d, deposit_amount_7d, net_deposit FROM player_value ORDER BY ALL"
        ).fetchall()
    assert [(p, c, n, float(a), float(net)) for p, c, n, a, net in rows] == [
        ("1", "BRL", 1, 50.0, 50.0), ("1", "EUR", 2, 125.0, 125.0), ("2", "NOK", 0, 0.0, 0.0),
    ]
