import json

import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from gig_etl.contract import ENVELOPE_FIELDS, TopicKind
from gig_etl.lib.parse import QuarantineReason, parse_raw_batch
from gig_etl.lib.raw_store import RAW_MESSAGE_SCHEMA
from gig_etl_tests.hostile import TENANT, hostile_message, hostile_settings, raw_table


def raw_batch(*values: bytes | None, keys: list[bytes] | None = None) -> pa.Table:
    n = len(values)
    return pa.Table.from_pydict(
        {
            "topic": ["gig.acme.x"] * n, "partition": [0] * n, "offset": list(range(n)), "timestamp": [0] * n,
            "key": keys or [b"1"] * n, "value": list(values),
        },
        schema=RAW_MESSAGE_SCHEMA,
    )


def env(**overrides) -> bytes:
    base = {
        "schema_version": 1, "message_id": "m1", "tenant_id": "acme", "customer_id": "1", "type": "profile",
        "occurred_at": "2026-11-23T10:15:02.125Z", "data": {"vip_level": 3},
    }
    return json.dumps(base | overrides).encode()


@pytest.mark.parametrize(
    "value, kind, reason",
    [
        (b"\xff", TopicKind.PROFILES, "value is not UTF-8 text"),
        (b"{oops", TopicKind.PROFILES, "value is not a JSON object"),
        (b'"just a string"', TopicKind.PROFILES, "value is not a JSON object"),
        (None, TopicKind.EVENTS, "null value on the events topic"),
        (env(message_id=None), TopicKind.PROFILES, "envelope field message_id is null, not varchar"),
        (env(customer_id=100234), TopicKind.PROFILES, "envelope field customer_id is ubigint, not varchar"),
        (env(data=[1]), TopicKind.PROFILES, "envelope field data is array, not object"),
        (env(schema_version=2), TopicKind.PROFILES, "unsupported schema_version 2"),
        (env(tenant_id="other"), TopicKind.PROFILES, "tenant_id 'other' differs from the integration tenant 'acme'"),
        (env(customer_id=""), TopicKind.PROFILES, "customer_id is empty or blank"),
        (env(occurred_at="2026-11-23T10:15:02"), TopicKind.PROFILES, "occurred_at '2026-11-23T10:15:02' has no zone offset"),
        (env(occurred_at="yesterday"), TopicKind.PROFILES, "occurred_at 'yesterday' is not an RFC 3339 time"),
        (env(type="bonus"), TopicKind.PROFILES, "type 'bonus' on the profiles topic"),
        (env(), TopicKind.EVENTS, "type 'profile' on the events topic"),
        (env(data={"birth_date": "1990-13-45"}), TopicKind.PROFILES, "birth_date '1990-13-45' is not a date (YYYY-MM-DD)"),
        (env(data={"last_login_at": "2026-11-23 10:00"}), TopicKind.PROFILES, "last_login_at '2026-11-23 10:00' is not an RFC 3339 time with a zone"),
        (env(data={"is_blocked": "yes"}), TopicKind.PROFILES, "is_blocked 'yes' is not a boolean"),
        (env(data={"tags": "vip"}), TopicKind.PROFILES, "tags 'vip' is not a list of strings"),
        (env(data={"deposit_count": 1.5}), TopicKind.PROFILES, "deposit_count '1.5' is not an integer"),
        # Values that fit the regular expressions but not the warehouse's columns.
        (env(occurred_at="2026-02-30T10:15:02Z"), TopicKind.PROFILES, "occurred_at '2026-02-30T10:15:02Z' is not an RFC 3339 time"),
        (env(occurred_at="2016-12-31T23:59:60Z"), TopicKind.EVENTS, "occurred_at '2016-12-31T23:59:60Z' is not an RFC 3339 time"),
        (env(data={"last_login_at": "2026-11-23T24:00:00Z"}), TopicKind.PROFILES, "last_login_at '2026-11-23T24:00:00Z' is not an RFC 3339 time with a zone"),
        (env(data={"deposit_count": 2**63}), TopicKind.PROFILES, "deposit_count '9223372036854775808' is out of range for BIGINT"),
        (env(data={"real_balance": 1e15}), TopicKind.PROFILES, "real_balance '1000000000000000.0' is out of range for DECIMAL(18,4)"),
        (env(type="payment_deposit", data={"status": "lost"}), TopicKind.EVENTS, "status 'lost' is not one of pending, approved, declined, cancelled, rollback"),
        (env(data={}).replace(b'"data": {}', b'"data": {"vip_level": 3, "vip_level": 4}'), TopicKind.PROFILES, "data has the field vip_level more than once"),
        # Untrusted upstream: each loaded before, silently or until a later step failed.
        (env(message_id=""), TopicKind.PROFILES, "message_id is empty or blank"),
        (env(message_id=" \t"), TopicKind.PROFILES, "message_id is empty or blank"),
        (env(customer_id=" "), TopicKind.PROFILES, "customer_id is empty or blank"),
        (env(customer_id="2"), TopicKind.PROFILES, "customer_id differs from the message key"),
        (env(type=" "), TopicKind.EVENTS, "type is empty or blank"),
        (env(occurred_at="9999-12-31T23:00:00-05:00"), TopicKind.PROFILES, "occurred_at '9999-12-31T23:00:00-05:00' is outside the years 1 to 9999 (UTC)"),
        (env(occurred_at="0000-06-01T00:00:00Z"), TopicKind.PROFILES, "occurred_at '0000-06-01T00:00:00Z' is outside the years 1 to 9999 (UTC)"),
        (env(data={"last_login_at": "9999-12-31T23:59:59-00:01"}), TopicKind.PROFILES, "last_login_at '9999-12-31T23:59:59-00:01' is not an RFC 3339 time with a zone"),
        (env(data={"birth_date": "0000-01-01"}), TopicKind.PROFILES, "birth_date '0000-01-01' is not a date (YYYY-MM-DD)"),
        # A repeated name that is no valid JSON path once quoted failed the whole batch's shred.
        (env(data={}).replace(b'"data": {}', b'"data": {"a\\\\": 1, "a\\\\": 2}'), TopicKind.PROFILES, "data has the field a\\ more than once"),
    ],
)
def test_each_kind_of_bad_input_is_quarantined_with_its_reason(value, kind, reason):
    parsed = parse_raw_batch(raw_batch(value), kind, "acme")
    assert parsed.messages.height == 0
    assert parsed.quarantined["reason"].to_list() == [reason]
    assert parsed.quarantined["raw_value"].to_list() == [value]
    [code] = parsed.quarantined["reason_code"].to_list()
    assert code in set(QuarantineReason)


@pytest.mark.parametrize(
    ("value", "kind", "code"),
    [
        (b"\xff", TopicKind.PROFILES, QuarantineReason.NOT_TEXT),
        (b"[1]", TopicKind.PROFILES, QuarantineReason.NOT_AN_OBJECT),
        (env(tenant_id="other"), TopicKind.PROFILES, QuarantineReason.WRONG_TENANT),
        (env(occurred_at="2026-11-20T10:00:00"), TopicKind.PROFILES, QuarantineReason.TIME_WITHOUT_ZONE),
        (env(data={"vip_level": "high"}), TopicKind.PROFILES, QuarantineReason.BAD_VALUE),
        (env(data={"deposit_count": 2**63}), TopicKind.PROFILES, QuarantineReason.OUT_OF_RANGE),
        (env(type="payment_deposit", data={"status": "lost"}), TopicKind.EVENTS, QuarantineReason.BAD_VALUE),
    ],
)
def test_a_reason_comes_with_one_of_a_few_codes_to_count_by(value, kind, code):
    assert parse_raw_batch(raw_batch(value), kind, "acme").quarantined["reason_code"].to_list() == [code.value]


def test_valid_messages_keep_nulls_unknown_fields_and_times_in_utc():
    value = env(occurred_at="2026-11-23T12:15:02.125+02:00", data={"vip_level": None, "new_thing": {"a": 1}, "tags": ["x"]})
    parsed = parse_raw_batch(raw_batch(value), TopicKind.PROFILES, "acme")
    assert parsed.quarantined.height == 0
    [row] = parsed.messages.to_dicts()
    assert row["occurred_at"].isoformat() == "2026-11-23T10:15:02.125000+00:00"
    assert sorted(parsed.fields.select("field", "json_type", "value").rows()) == [
        ("new_thing", "OBJECT", '{"a":1}'), ("tags", "ARRAY", '["x"]'), ("vip_level", "NULL", None),
    ]


@pytest.mark.parametrize("spelling", ["2026-11-23T12:15:02.125+02:00", "2026-11-23t10:15:02.125z", "2026-11-23 10:15:02.125Z"])
def test_every_spelling_rfc_3339_allows_names_its_instant(spelling):
    parsed = parse_raw_batch(raw_batch(env(type="bonus", occurred_at=spelling)), TopicKind.EVENTS, "acme")
    assert parsed.quarantined.height == 0
    assert parsed.messages["occurred_at"].dt.to_string("%Y-%m-%dT%H:%M:%S%.3f%:z").to_list() == ["2026-11-23T10:15:02.125+00:00"]


def test_a_repeated_field_quarantines_only_its_own_message():
    repeated = env(message_id="m2").replace(b'"data": {"vip_level": 3}', b'"data": {"a": 1, "b": null, "a": 1}')
    parsed = parse_raw_batch(raw_batch(env(data={"a": 1, "b": None}), repeated), TopicKind.PROFILES, "acme")
    assert parsed.messages["message_id"].to_list() == ["m1"]
    assert sorted(parsed.fields.select("field", "json_type", "value").rows(), key=str) == [
        ("a", "UBIGINT", "1"), ("b", "NULL", None),
    ]
    assert parsed.quarantined["reason"].to_list() == ["data has the field a more than once"]


def test_a_tombstone_on_the_profiles_topic_erases_its_key():
    parsed = parse_raw_batch(raw_batch(None, keys=[b"100234"]), TopicKind.PROFILES, "acme")
    assert parsed.tombstones["customer_id"].to_list() == ["100234"]
    assert parsed.quarantined.height == parsed.messages.height == 0


@pytest.mark.parametrize("key", [b"\xff\xfe", b"", None])
def test_a_tombstone_whose_key_is_not_a_utf8_customer_id_is_quarantined(key):
    parsed = parse_raw_batch(raw_batch(None, keys=[key]), TopicKind.PROFILES, "acme")
    assert parsed.tombstones.height == 0
    assert parsed.quarantined["reason"].to_list() == ["tombstone key is not a UTF-8 customer id"]
    assert parsed.quarantined["key"].to_list() == [key]


@pytest.mark.parametrize("key", [b"\xff\xfe", b"100235", b"", None])
def test_a_message_not_keyed_by_its_customer_id_is_quarantined(key):
    # The key is what partitions and erasure go by: a message keyed by another
    # customer (or by no UTF-8 id) would be loaded for one and erased for another.
    parsed = parse_raw_batch(raw_batch(env(customer_id="100234"), keys=[key]), TopicKind.PROFILES, "acme")
    assert parsed.messages.height == 0
    assert parsed.quarantined["reason"].to_list() == ["customer_id differs from the message key"]


# Envelopes spelled in ways json.dumps does not write: each on the edge of what
# the quick way takes as a usual message.
_REST = b'"message_id": "m1", "tenant_id": "acme", "customer_id": "c1", "type": "profile", "occurred_at": "2026-11-23T10:15:02Z"'
_SPELLINGS = [
    b'{"schema_version": 1.0, ' + _REST + b', "data": {}}',
    b'{"schema_version": 1e0, ' + _REST + b', "data": {}}',
    b'{"schema_version": 1, ' + _REST + b', "data": null}',
    b'{"schema_version": 1, ' + _REST + b', "data": {"a": 1, "a": 2}}',
    b'{"schema_version": 1, ' + _REST + b', "data": {}, "data": []}',
    b'{"schema_version": 1, "message_id": 7, ' + _REST + b', "data": {}}',  # message_id twice: the first counts
    b'{"schema_version":1,"message_id":"m\\u0031","tenant_id":"acme","customer_id":"c1","type":"profile",'
    b'"occurred_at":"2026-11-23T10:15:02Z","data":{"a":"\\"q\\""}}',
    b'  {"schema_version" : 1 , "message_id" : "\xc3\xa9" , "tenant_id" : "acme" , "customer_id" : "c1" , '
    b'"type" : "profile" , "occurred_at" : "2026-11-23T10:15:02Z" , "data" : { "n" : -0 , "d" : 1.50 } } ',
    b'{"schema_version": 01, "message_id": "m1"}',
]


_edge_texts = st.one_of(
    st.sampled_from(['a"b', "a\\", "\x00", "\n", " ", "", "é", "😀", "profile", "acme", "c1"]), st.text(max_size=6),
)
_edge_values = st.one_of(_edge_texts, st.none(), st.integers(), st.floats(allow_nan=False), st.just({}), st.just([]))


@st.composite
def _nearly_usual(draw) -> tuple[bytes, bytes]:
    """A message valid but for at most one field of its envelope or `data`, which
    is an edge of the quick way: an escape, a control character, another type."""
    customer_id = draw(st.sampled_from(["c1", "c1", "c1", 'c"1', "c\\1", "é"]))
    envelope = {
        "schema_version": 1, "message_id": draw(_edge_texts), "tenant_id": TENANT, "customer_id": customer_id,
        "type": "profile", "occurred_at": "2026-11-23T10:15:02Z",
        "data": draw(st.dictionaries(_edge_texts, _edge_values, max_size=3)),
    }
    field = draw(st.sampled_from([None, *envelope]))
    if field is not None:
        envelope[field] = draw(_edge_values)
    return customer_id.encode(), json.dumps(envelope, ensure_ascii=draw(st.booleans())).encode()


def _assert_read_alike(messages: list[tuple[bytes | None, bytes | None]]) -> None:
    for kind in TopicKind:
        raw = raw_table(kind, messages)
        quick = parse_raw_batch(raw, kind, TENANT)
        exact = parse_raw_batch(raw, kind, TENANT, quick_path=False)
        for name in ("messages", "fields", "tombstones", "quarantined"):
            assert_frame_equal(getattr(quick, name), getattr(exact, name), check_row_order=name != "fields")


def test_each_envelope_field_with_an_escape_or_another_type_reads_alike_either_way():
    messages = [(b"c1", spelling) for spelling in _SPELLINGS]
    for field in ENVELOPE_FIELDS:
        for value in ['a"b', "a\\", "\x00", "\t", "é", "", None, 1, 1.5, {}, [], True]:
            envelope = json.loads(env(tenant_id=TENANT, customer_id="c1")) | {field: value}
            key = value.encode() if field == "customer_id" and isinstance(value, str) else b"c1"
            messages += [(key, json.dumps(envelope, ensure_ascii=escaped).encode()) for escaped in (True, False)]
    _assert_read_alike(messages)


@hostile_settings
@given(messages=st.lists(st.one_of(
    hostile_message(TopicKind.PROFILES), _nearly_usual(), st.tuples(st.just(b"c1"), st.sampled_from(_SPELLINGS)),
), max_size=20))
def test_the_quick_way_of_reading_a_usual_message_agrees_with_the_exact_way(messages):
    _assert_read_alike(messages)
