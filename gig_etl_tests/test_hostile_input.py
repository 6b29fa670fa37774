"""Untrusted upstream, tried as a hostile or careless one would: whatever a message
holds, the load succeeds, accounts for every message, loads the control customers
beside it, writes nothing it was not entitled to, and the next run succeeds."""

import json
import tempfile
from contextlib import contextmanager
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from gig_etl.contract import TopicKind
from gig_etl.lib.catalog import dynamic_columns, place_new_attributes
from gig_etl.lib.home import raw_root
from gig_etl.lib.identifiers import EXTRA_ATTRIBUTES, UnsafeIdentifier, column_for_attribute, quote_identifier
from gig_etl.lib.load import load_integration, rebuild_integration
from gig_etl.lib.raw_store import RawStore
from gig_etl.lib.warehouse import connect_warehouse, embedded_lake, profile_columns
from gig_etl_tests.hostile import (
    CRAFTED_NAMES,
    TENANT,
    assert_warehouse_holds_only_what_input_entitles,
    control_messages,
    files_under,
    hostile_message,
    hostile_settings,
    names,
    store_messages,
)
from gig_etl_tests.pipeline import register


def _envelope(customer: str, data: dict, message_id: str, type_: str = "profile", **overrides) -> bytes:
    value = {
        "schema_version": 1, "message_id": message_id, "tenant_id": TENANT, "customer_id": customer, "type": type_,
        "occurred_at": "2026-11-23T10:15:02Z", "data": data,
    } | overrides
    return json.dumps(value).encode()


@contextmanager
def _load_hostile(home: Path, profiles: list, events: list, **load_settings):
    """Stores the messages with control customers around them, loads them twice;
    yields the warehouse connection still open."""
    integration = register(home, "it", TENANT, "b:1")
    store = RawStore(raw_root(home))
    batches = []
    for kind, messages in ((TopicKind.PROFILES, profiles), (TopicKind.EVENTS, events)):
        batches.append(store_messages(store, "it", kind, control_messages(kind)[:2] + messages + control_messages(kind)[2:]))
    with connect_warehouse(embedded_lake(home)) as db:
        first = load_integration(db, store, integration, **load_settings)
        second = load_integration(db, store, integration, **load_settings)
        yield integration, store, db, batches, first, second


def _erased_ids(profiles) -> set[str]:
    """The customers the profiles' tombstones erase: those keyed by a UTF-8 id."""
    erased = set()
    for key, value in profiles:
        if value is None and key:
            try:
                erased.add(key.decode())
            except UnicodeDecodeError:
                pass
    return erased


def _about(key: bytes | None, value: bytes | None, customers: set[str]) -> bool:
    """The erasure rule, restated apart from sql/erasure.sql: keyed by one of the
    customers, or a JSON object naming one as its customer_id."""
    if value is None:
        return False
    if key is not None and key in {c.encode() for c in customers}:
        return True
    named = _json(value)
    return named is not None and named["customer_id"] in customers


def _check_erasure(store: RawStore, db, profiles, events) -> None:
    """Nothing about an erased customer is left in raw or in quarantine, and every
    other message is still in raw."""
    erased = _erased_ids(profiles)
    raw = [(r["key"], r["value"]) for b in store.batches("it") for r in pq.read_table(b.path).to_pylist()]
    sent = control_messages(TopicKind.PROFILES) + control_messages(TopicKind.EVENTS) + profiles + events
    assert sorted(raw, key=repr) == sorted([m for m in sent if not _about(*m, erased)], key=repr)
    for key, value in db.execute("SELECT key, raw_value FROM quarantine").fetchall():
        assert not _about(key, value, erased)


def _check_invariants(home: Path, db, batches, first, second, sent_names: set[str], sent_ids: set[str]) -> None:
    total = first.total
    assert total.rows == sum(b.rows for b in batches)
    assert total.loaded + total.duplicates + total.quarantined == total.rows
    for kind_counts in first.counts.values():
        assert kind_counts.loaded + kind_counts.duplicates + kind_counts.quarantined == kind_counts.rows
    assert second.total.rows == 0  # the next run succeeds, with nothing left to load
    emails = dict(db.execute("SELECT customer_id, gig_email FROM profiles WHERE customer_id LIKE 'ctl-%'").fetchall())
    assert emails == {f"ctl-{n}": f"ctl-{n}@example.com" for n in range(3)}
    control_events = db.execute("SELECT count(*) FROM events WHERE customer_id LIKE 'ctl-%'").fetchall()[0][0]
    assert control_events == 3
    assert_warehouse_holds_only_what_input_entitles(db, sent_names)
    event_ids = {e for (e,) in db.execute("SELECT event_id FROM events").fetchall()}
    assert event_ids <= sent_ids
    [(rows_in_quarantine,)] = db.execute("SELECT count(*) FROM quarantine").fetchall()
    assert rows_in_quarantine <= total.quarantined
    # Nothing beside the home, nor where a crafted name points (CRAFTED_NAMES).
    assert list(home.parent.iterdir()) == [home]
    assert not Path("/tmp/gig-etl-hostile-name.csv").exists()
    assert {p.relative_to(home).parts[0] for p in files_under(home)} <= {
        "raw", "lake", "registry.sqlite", "registry.sqlite-wal", "registry.sqlite-shm",
    }


def _json(value: bytes | None):
    """A value as JSON, by the warehouse's own parser (Python's stops at 1,000
    levels of nesting and 4,300 digits); None if it is not JSON."""
    if value is None:
        return None
    with duckdb.connect() as db:
        [(top, data)] = db.execute(
            "SELECT CASE WHEN json_valid(t) THEN json_type(t) END, CASE WHEN json_valid(t) THEN json_keys(t, '$.data') END "
            "FROM (SELECT TRY(decode(?::BLOB)) AS t)",
            [value],
        ).fetchall()
        if top != "OBJECT":
            return None
        [(message_id, customer_id)] = db.execute(
            "SELECT t->>'$.message_id', t->>'$.customer_id' FROM (SELECT decode(?::BLOB) AS t)", [value]
        ).fetchall()
    return {"data": data, "message_id": message_id, "customer_id": customer_id}


def _sent(messages) -> tuple[set[str], set[str]]:
    """The data names and message ids in the values sent."""
    sent_names, sent_ids = set(), set()
    for _, value in messages:
        envelope = _json(value)
        if envelope is None:
            continue
        sent_names |= set(envelope["data"] or [])
        if envelope["message_id"] is not None:
            sent_ids.add(envelope["message_id"])
    return sent_names, sent_ids | {f"events-ctl-{n}" for n in range(3)}


_DEEP = b"[" * 20_000 + b"]" * 20_000
_HUGE_NUMBER = b"1" + b"0" * 5_000


@hostile_settings
@given(
    profiles=st.lists(hostile_message(TopicKind.PROFILES), max_size=12),
    events=st.lists(hostile_message(TopicKind.EVENTS), max_size=12),
)
# What fuzzing and the issue found, each of which failed the batch (and every run after it) before:
@example(profiles=[(b"c1", _envelope("c1", {'x" VARCHAR); DELETE FROM events; --': 1}, "m1"))], events=[])
@example(profiles=[(b"c1", _envelope("c1", {"Email": "A@X", "email": "a@x"}, "m1"))], events=[])
@example(profiles=[(b"c1", _envelope("c1", {"e\x00mail": "x"}, "m1"))], events=[])
@example(profiles=[(b"c1", _envelope("c1", {'a"b': 1}, "m1"))], events=[])
@example(profiles=[], events=[(b"c1", _envelope("c1", {}, "m1", "bonus", occurred_at="9999-12-31T23:00:00-05:00"))])
@example(profiles=[(b"c1", _envelope("c1", {"x": 1}, ""))], events=[])
@example(profiles=[(b"c2", _envelope("c1", {"x": 1}, "m1"))], events=[])
@example(profiles=[(b"c1", _envelope("c1", {"n": 1e308}, "m1")), (b"c1", _envelope("c1", {"n": 1}, "m2"))], events=[])
@example(profiles=[(b"c1", _envelope("c1", {"n": 1}, "m1")), (b"c1", _envelope("c1", {"n": 2**64}, "m2"))], events=[])
@example(profiles=[(b"c1", _envelope("c1", {"t": [1]}, "m1")), (b"c1", _envelope("c1", {"t": {"a": 1}}, "m2"))], events=[])
# A value naming no customer beside an erasure was lost from quarantine and raw
# (an IN over NULL is NULL, which the filter took for "drop").
@example(profiles=[(b"c1", b"not json"), (b"c9", None)], events=[(b"c2", b"[1]")])
@example(profiles=[(b"c9", _envelope("c1", {}, "m1")), (b"c1", _envelope("c1", {}, "m2")), (b"c1", None)], events=[])
# Deep, huge and past every range: loaded or quarantined, never a failed batch.
@example(profiles=[(b"c1", _envelope("c1", {"deep": "@"}, "m1").replace(b'"@"', _DEEP)), (b"c1", _DEEP)], events=[])
@example(profiles=[(b"c1", _envelope("c1", {"n": "@", "f": "#"}, "m1").replace(b'"@"', _HUGE_NUMBER).replace(b'"#"', b"1e99999"))], events=[])
@example(profiles=[(b"c1", _envelope("c1", {"notes": "x" * 900_000}, "m1"))], events=[])
def test_no_message_can_stop_the_load_or_write_what_it_was_not_entitled_to(profiles, events):
    with tempfile.TemporaryDirectory() as folder:
        home = Path(folder) / "home"
        with _load_hostile(home, profiles, events) as (_, store, db, batches, first, second):
            _check_invariants(home, db, batches, first, second, *_sent(profiles + events))
            _check_erasure(store, db, profiles, events)


def test_a_crafted_name_runs_no_sql_and_writes_no_file(tmp_path):
    # Before: this name, pasted into ALTER TABLE, deleted every integration's events
    # and wrote a file outside $GIG_ETL_HOME.
    target = tmp_path / "written-by-a-name.csv"
    crafted = f"x\" VARCHAR); DELETE FROM events; COPY (SELECT 1) TO '{target}'; --"
    home = tmp_path / "home"
    with _load_hostile(home, [(b"c1", _envelope("c1", {crafted: 1}, "m1"))], []) as (integration, store, db, _, first, _):
        assert first.total.quarantined == 0
        assert not target.exists()
        assert db.execute("SELECT count(*) FROM events").fetchall()[0][0] == 3
        [(place, extra)] = db.execute(
            "SELECT c.column_name, p.extra_attributes FROM attribute_catalog AS c, profiles AS p "
            "WHERE c.attribute = ? AND p.customer_id = 'c1'", ["gig_" + crafted],
        ).fetchall()
        assert (place, extra) == (EXTRA_ATTRIBUTES, {crafted: "1"})


def test_names_that_differ_in_case_or_are_unsafe_keep_their_values_in_the_map(tmp_path):
    data = {"email": "a@x.com", "Email": "B@X.COM", "nul\x00name": "n", "": "empty", "new_thing": 7}
    with _load_hostile(tmp_path / "home", [(b"c1", _envelope("c1", data, "m1"))], []) as (_, _, db, _, first, _):
        assert first.total.quarantined == 0
        [(email, new_thing, extra)] = db.execute(
            "SELECT gig_email, gig_new_thing, extra_attributes FROM profiles WHERE customer_id = 'c1'"
        ).fetchall()
        assert (email, new_thing) == ("a@x.com", 7)
        assert extra == {"Email": "B@X.COM", "nul\x00name": "n", "": "empty"}
        places = dict(db.execute("SELECT attribute, column_name FROM attribute_catalog WHERE attribute <> 'gig_email'").fetchall())
        assert places["gig_Email"] == places["gig_nul\x00name"] == places["gig_"] == EXTRA_ATTRIBUTES
        assert places["gig_new_thing"] == "gig_new_thing"


def test_thousands_of_new_names_stay_within_the_column_limit(tmp_path):
    # Before: a few thousand new names in two messages failed the batch (out of memory).
    first_names = {f"attr_{n}": n for n in range(3000)}
    second_names = {f"other_{n}": n for n in range(3000)}
    profiles = [(b"c1", _envelope("c1", first_names, "m1")), (b"c2", _envelope("c2", second_names, "m2"))]
    with _load_hostile(tmp_path / "home", profiles, [], max_attribute_columns=50) as (_, _, db, _, first, _):
        assert first.total.quarantined == 0
        assert dynamic_columns(profile_columns(db)) == 50
        [(in_columns, in_map)] = db.execute(
            "SELECT count(*) FILTER (column_name = attribute), count(*) FILTER (column_name = ?) "
            "FROM attribute_catalog WHERE starts_with(attribute, 'gig_attr_') OR starts_with(attribute, 'gig_other_')",
            [EXTRA_ATTRIBUTES],
        ).fetchall()
        assert (in_columns, in_map) == (50, 5950)
        [(c1, c2)] = db.execute(
            "SELECT (SELECT cardinality(extra_attributes) FROM profiles WHERE customer_id = 'c1'), "
            "(SELECT extra_attributes['other_2999'] FROM profiles WHERE customer_id = 'c2')"
        ).fetchall()
        assert (c1, c2) == (2950, "2999")


def test_names_are_placed_by_one_rule():
    assert column_for_attribute("vip_level") == "gig_vip_level"
    for unsafe in ("Email", "a b", "", "a" * 60, "1abc", "é", 'x"', "x\n"):
        assert column_for_attribute(unsafe) is None, unsafe
    placed = place_new_attributes(["b", "a", "Email", "c", "gig_x"], existing_columns=["gig_c", "gig_Old"], room=1)
    assert placed == {"a": "gig_a", "b": EXTRA_ATTRIBUTES, "c": "gig_c", "Email": EXTRA_ATTRIBUTES, "gig_x": EXTRA_ATTRIBUTES}
    assert place_new_attributes(["old"], existing_columns=["gig_Old"], room=5) == {"old": EXTRA_ATTRIBUTES}


@given(names)
@example("a\x00")
def test_only_safe_names_become_sql(name):
    column = column_for_attribute(name)
    assert column is None or quote_identifier(column) == f'"{column}"'
    try:
        quoted = quote_identifier(name)
    except UnsafeIdentifier:
        return
    assert quoted == f'"{name}"' and len(name) <= 63 and name == name.lower()
    assert all(c.isascii() and (c.isalnum() or c == "_") for c in name)


def test_every_crafted_name_is_kept_in_the_catalog(tmp_path):
    data = {name: str(n) for n, name in enumerate(CRAFTED_NAMES)}  # strings: "email" is among them
    with _load_hostile(tmp_path / "home", [(b"c1", _envelope("c1", data, "m1"))], []) as (_, _, db, _, first, _):
        catalogued = {a for (a,) in db.execute("SELECT attribute FROM attribute_catalog").fetchall()}
        assert {"gig_" + name for name in CRAFTED_NAMES} <= catalogued


# --- raw files --------------------------------------------------------------------


def _two_batches_each(home: Path):
    integration = register(home, "it", TENANT, "b:1")
    store = RawStore(raw_root(home))
    batches = [
        store_messages(store, "it", TopicKind.PROFILES, [(f"c{n}".encode(), _envelope(f"c{n}", {"email": f"{n}@x"}, f"m{n}"))], n)
        for n in range(3)
    ]
    return integration, store, batches


@pytest.mark.parametrize("damage", ["missing", "truncated", "not parquet", "wrong columns"])
def test_an_unreadable_raw_batch_is_put_on_record_and_the_batches_after_it_load(tmp_path, damage):
    integration, store, batches = _two_batches_each(tmp_path)
    broken = Path(batches[0].path)
    if damage == "missing":
        broken.unlink()
    elif damage == "truncated":
        broken.write_bytes(broken.read_bytes()[:40])
    elif damage == "not parquet":
        broken.write_bytes(b"hello")
    else:
        pq.write_table(pq.read_table(broken).drop_columns(["value"]), broken)
    with connect_warehouse(embedded_lake(tmp_path)) as db:
        load = load_integration(db, store, integration)
        assert list(load.unreadable) == [batches[0].batch_id]
        assert sorted(c for (c,) in db.execute("SELECT customer_id FROM profiles").fetchall()) == ["c1", "c2"]
        assert [r.batch.batch_id for r in store.unreadable("it")] == [batches[0].batch_id]
        assert load_integration(db, store, integration).total.rows == 0  # and every later run succeeds


@hostile_settings
@given(
    damage=st.sampled_from(["truncate", "overwrite", "flip", "delete", "empty"]),
    at=st.floats(min_value=0.0, max_value=1.0),
    garbage=st.binary(min_size=1, max_size=64),
    which=st.integers(min_value=0, max_value=2),
)
# A byte in the file's metadata that made a column name invalid UTF-8 failed the load.
@example(damage="overwrite", at=0.40625, garbage=b"\x80", which=0)
def test_no_broken_raw_file_stops_the_batches_after_it(damage, at, garbage, which):
    with tempfile.TemporaryDirectory() as folder:
        home = Path(folder)
        integration, store, batches = _two_batches_each(home)
        path = Path(batches[which].path)
        content = path.read_bytes()
        cut = int(at * len(content))
        if damage == "truncate":
            path.write_bytes(content[:cut])
        elif damage == "overwrite":
            path.write_bytes(content[:cut] + garbage + content[cut + len(garbage):])
        elif damage == "flip":
            path.write_bytes(content[:cut] + bytes([content[min(cut, len(content) - 1)] ^ 0xFF]) + content[cut + 1:])
        elif damage == "delete":
            path.unlink()
        else:
            path.write_bytes(b"")
        with connect_warehouse(embedded_lake(home)) as db:
            load = load_integration(db, store, integration)
            loaded = {c for (c,) in db.execute("SELECT customer_id FROM profiles").fetchall()}
            # The other batches load; the damaged one loads (a byte Parquet does not
            # check), or is on record as unreadable, or its message is quarantined.
            assert loaded >= {f"c{n}" for n in range(3) if n != which}
            if f"c{which}" not in loaded:
                assert list(load.unreadable) == [batches[which].batch_id] or load.total.quarantined == 1
            assert load.total.loaded + load.total.duplicates + load.total.quarantined == load.total.rows
            assert load_integration(db, store, integration).total.rows == 0


def test_a_rebuild_with_an_unreadable_file_keeps_everything_else(tmp_path):
    integration, store, batches = _two_batches_each(tmp_path)
    with connect_warehouse(embedded_lake(tmp_path)) as db:
        load_integration(db, store, integration)
    Path(batches[1].path).write_bytes(b"")
    with connect_warehouse(embedded_lake(tmp_path)) as db:
        load = rebuild_integration(db, store, integration, tmp_path / "scratch")
        assert list(load.unreadable) == [batches[1].batch_id]
        assert sorted(c for (c,) in db.execute("SELECT customer_id FROM profiles").fetchall()) == ["c0", "c2"]
    assert not (tmp_path / "scratch").exists()


def test_a_rebuild_that_fails_leaves_the_warehouse_as_it_was(tmp_path, monkeypatch):
    from gig_etl.lib import load as load_module

    integration, store, _ = _two_batches_each(tmp_path)
    with connect_warehouse(embedded_lake(tmp_path)) as db:
        load_integration(db, store, integration)
        before = db.execute("SELECT * FROM profiles ORDER BY ALL").fetchall()

        def crash(*args, **kwargs):
            raise RuntimeError("the rebuild died")

        monkeypatch.setattr(load_module, "erase_from_raw", crash)
        with pytest.raises(RuntimeError, match="the rebuild died"):
            rebuild_integration(db, store, integration, tmp_path / "scratch")
        assert db.execute("SELECT * FROM profiles ORDER BY ALL").fetchall() == before
        assert db.execute("SELECT count(*) FROM loaded_batches").fetchall()[0][0] == 3


def test_an_erasure_that_finds_a_raw_file_gone_records_it_and_goes_on(tmp_path):
    integration, store, batches = _two_batches_each(tmp_path)
    with connect_warehouse(embedded_lake(tmp_path)) as db:
        load_integration(db, store, integration)
        Path(batches[2].path).unlink()
        store_messages(store, "it", TopicKind.PROFILES, [(b"c1", None)], first_offset=10)
        load = load_integration(db, store, integration)
        assert load.total.erasures == 1
        assert [r.batch.batch_id for r in store.unreadable("it")] == [batches[2].batch_id]
        assert db.execute("SELECT customer_id FROM profiles ORDER BY 1").fetchall() == [("c0",), ("c2",)]
        assert load_integration(db, store, integration).total.rows == 0


# --- erasure ----------------------------------------------------------------------


def test_erasure_removes_the_person_from_raw_and_the_warehouse_and_nobody_else(tmp_path):
    # Before: raw kept what was keyed by a bystander but named the erased customer,
    # and dropped what was keyed by the erased customer but named a bystander.
    integration = register(tmp_path, "it", TENANT, "b:1")
    store = RawStore(raw_root(tmp_path))
    profiles = [
        (b"erased", _envelope("erased", {"email": "e@x"}, "m1")),
        (b"bystander", _envelope("bystander", {"email": "b@x"}, "m2")),
        (b"bystander", _envelope("erased", {"email": "e2@x"}, "m3")),  # keyed by one, about the other
        (b"other", _envelope("other2", {"email": "o@x"}, "m4")),  # about neither
    ]
    store_messages(store, "it", TopicKind.PROFILES, profiles)
    store_messages(store, "it", TopicKind.PROFILES, [(b"erased", None)], first_offset=10)
    with connect_warehouse(embedded_lake(tmp_path)) as db:
        load_integration(db, store, integration)
        assert db.execute("SELECT customer_id FROM profiles ORDER BY 1").fetchall() == [("bystander",)]
        quarantined = db.execute("SELECT key, customer_id FROM quarantine ORDER BY 1").fetchall()
        assert quarantined == [(b"other", "other2")]
    raw = [row for b in store.batches("it") for row in pq.read_table(b.path).to_pylist()]
    assert not any(b"erased" in (r["value"] or b"") for r in raw)
    assert [r["key"] for r in raw if r["value"] is None] == [b"erased"]  # the tombstone stays: a rebuild erases again
    assert sorted(r["key"] for r in raw if r["value"] is not None) == [b"bystander", b"other"]


# --- through `gig-etl run`, against the embedded broker -------------------------------


def _hostile_sample() -> list[tuple[TopicKind, bytes, bytes | None]]:
    """A fixed sample of what the property test above generates, for the real run."""
    sample = [(TopicKind.PROFILES, b"c1", _envelope("c1", {name: n}, f"p{n}")) for n, name in enumerate(CRAFTED_NAMES)]
    sample += [
        (TopicKind.PROFILES, b"c2", _envelope("c2", {f"n{i}": i for i in range(2000)}, "wide")),
        (TopicKind.PROFILES, b"c3", _envelope("c3", {"x": 1}, "")),
        (TopicKind.PROFILES, b"c4", _envelope("c3", {"x": 1}, "keyed-by-another")),
        (TopicKind.PROFILES, b"c5", _envelope("c5", {"last_login_at": "9999-12-31T23:00:00-05:00"}, "far")),
        (TopicKind.PROFILES, b"c6", b"\xff\xfe not json"),
        (TopicKind.PROFILES, b"c7", _envelope("c7", {}, "dup").replace(b'"data": {}', b'"data": {"a\\\\": 1, "a\\\\": 2}')),
        (TopicKind.EVENTS, b"c1", _envelope("c1", {"amount": 1e300}, "e1", "payment_deposit")),
        (TopicKind.EVENTS, b"c1", _envelope("c1", {}, "e2", 'x"; DROP TABLE events; --')),
        (TopicKind.EVENTS, b"c1", _envelope("c1", {}, "e3", "bonus", occurred_at="0000-01-01T00:00:00Z")),
        (TopicKind.PROFILES, b"c8", None),
    ]
    sample += [(kind, key, value) for kind in TopicKind for key, value in control_messages(kind)]
    return sample


def test_a_hostile_sample_through_gig_etl_run(kafka_connection, tenant, isolated_home):
    from click.testing import CliRunner

    from gig_etl.cli import main
    from gig_etl.simulate import SimulatedMessage, produce_traffic

    sample = _hostile_sample()
    retenanted = [
        (kind, key, value.replace(b'"tenant_id": "acme"', f'"tenant_id": "{tenant}"'.encode()) if value else value)
        for kind, key, value in sample
    ]
    produce_traffic(kafka_connection, tenant, [SimulatedMessage(k, key, v) for k, key, v in retenanted], partitions=2)
    register(isolated_home, "hostile", tenant, kafka_connection.bootstrap_servers)
    for run in range(2):
        result = CliRunner().invoke(main, ["run", "--integration", "hostile"])
        assert result.exit_code == 0, result.output
    with connect_warehouse(embedded_lake(isolated_home)) as db:
        [(read, loaded, duplicates, quarantined)] = db.execute(
            "SELECT sum(rows), sum(loaded), sum(duplicates), sum(quarantined) FROM loaded_batches"
        ).fetchall()
        assert read == len(sample) == loaded + duplicates + quarantined
        emails = dict(db.execute("SELECT customer_id, gig_email FROM profiles WHERE customer_id LIKE 'ctl-%'").fetchall())
        assert emails == {f"ctl-{n}": f"ctl-{n}@example.com" for n in range(3)}
        reasons = {r for (r,) in db.execute("SELECT reason FROM quarantine").fetchall()}
        assert "message_id is empty or blank" in reasons and "customer_id differs from the message key" in reasons
        assert db.execute("SELECT count(*) FROM events WHERE event_type = ?", ['x"; DROP TABLE events; --']).fetchall() == [(1,)]
        names_sent = {name for _, _, v in sample if v and v.startswith(b"{") for name in json.loads(v).get("data", {})}
        assert_warehouse_holds_only_what_input_entitles(db, names_sent)


def test_an_unreadable_raw_batch_is_drained_again_or_set_aside(kafka_connection, tenant, isolated_home):
    from gig_etl.defs.raw.assets import raw_topics
    from gig_etl.simulate import generate_traffic, produce_traffic
    from gig_etl_tests.pipeline import asset_metadata, check_results, materialize_integration

    messages = list(generate_traffic(tenant, 40, seed=3))
    produce_traffic(kafka_connection, tenant, messages, partitions=2)
    register(isolated_home, "broken", tenant, kafka_connection.bootstrap_servers)
    assert materialize_integration(isolated_home, "broken", assets=[raw_topics], batch_max_messages=50).success
    store = RawStore(raw_root(isolated_home))
    profiles = store.batches("broken", TopicKind.PROFILES)
    assert len(profiles) >= 3
    redrained, lost = profiles[0], profiles[1]
    Path(redrained.path).write_bytes(b"truncated")
    Path(lost.path).unlink()
    with store.state.transaction() as manifest:  # as if the broker had deleted what `lost` held
        manifest.execute("UPDATE raw_batch_ranges SET first_offset = first_offset + 1000000, "
                         "last_offset = last_offset + 1000000 WHERE batch_id = ?", (lost.batch_id,))

    first = materialize_integration(isolated_home, "broken", stall_timeout_s=3)
    assert first.success
    assert set(asset_metadata(first)["profiles"]["unreadable_raw_batches"]) == {redrained.batch_id, lost.batch_id}
    second = materialize_integration(isolated_home, "broken", stall_timeout_s=3)
    assert second.success
    [drained] = [
        e.materialization.metadata for e in second.get_asset_materialization_events()
        if e.materialization.asset_key.path == ["raw", "profiles"]
    ]
    assert set(drained["redrained"].value) == {redrained.batch_id}
    assert set(drained["set_aside"].value) == {lost.batch_id}
    check = check_results(second)["profiles:every_batch_readable"]
    assert not check.passed and lost.batch_id in check.description
    [record] = store.unreadable("broken")
    assert record.set_aside and record.batch.batch_id == lost.batch_id
    with connect_warehouse(embedded_lake(isolated_home)) as db:
        [(read, loaded, duplicates, quarantined)] = db.execute(
            "SELECT sum(rows), sum(loaded), sum(duplicates), sum(quarantined) FROM loaded_batches"
        ).fetchall()
    assert read == len(messages) - lost.rows == loaded + duplicates + quarantined


def test_what_the_warehouse_refuses_in_a_batch_is_found_and_quarantined_alone(tmp_path, monkeypatch):
    # A message no validation rule foresaw, that fails a statement of the load:
    # stood in for by an insert that refuses one event id.
    from gig_etl.lib import load as load_module

    real = load_module._add_to_event_catalog

    def refuses_poison(db):
        if db.execute("SELECT count(*) FROM new_events WHERE event_id = 'poison'").fetchall()[0][0]:
            raise duckdb.ConversionException("Conversion Error: cannot hold this value")
        real(db)

    monkeypatch.setattr(load_module, "_add_to_event_catalog", refuses_poison)
    events = [(f"c{n}".encode(), _envelope(f"c{n}", {"real_balance": n}, f"e{n}", "customer_balance")) for n in range(40)]
    events[17] = (b"c17", _envelope("c17", {"real_balance": 17}, "poison", "customer_balance"))
    with _load_hostile(tmp_path / "home", [], events) as (_, _, db, _, first, second):
        counts = first.counts["events"]
        assert (counts.rows, counts.loaded, counts.quarantined) == (43, 42, 1)
        [(key, reason)] = db.execute("SELECT key, reason FROM quarantine").fetchall()
        assert key == b"c17" and reason == (
            "the warehouse cannot hold it: ConversionException: Conversion Error: cannot hold this value"
        )
        assert db.execute("SELECT count(*) FROM events").fetchall() == [(42,)]
        assert db.execute("SELECT count(*) FROM loaded_batches").fetchall() == [(2,)]
