"""Hypothesis strategies for what a hostile or careless upstream can send, and
the invariants a load must keep whatever it sends."""

import json
import os
from pathlib import Path

import duckdb
import pyarrow as pa
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from gig_etl.contract import EVENT_TYPES, PROFILE_ATTRIBUTES, TopicKind
from gig_etl.lib.identifiers import ATTRIBUTE_PREFIX, EXTRA_ATTRIBUTES, is_safe_identifier
from gig_etl.lib.raw_store import RAW_MESSAGE_SCHEMA, RawStore

TENANT = "acme"

# A small default keeps `make test` within its budget; GIG_ETL_HYPOTHESIS_EXAMPLES
# asks for a long run (e.g. 2000).
EXAMPLES = int(os.environ.get("GIG_ETL_HYPOTHESIS_EXAMPLES", "15"))
hostile_settings = settings(
    max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)

# Names that broke the load before, or were meant to.
CRAFTED_NAMES = [
    'x" VARCHAR); DELETE FROM events; --',
    "x\" VARCHAR); COPY (SELECT 1) TO '/tmp/gig-etl-hostile-name.csv'; --",
    "Email", "EMAIL", "email", "e\x00mail", "a\\", 'a"b', "", " ", "gig_x", "extra_attributes", "select",
    "\u202eltr", "名前", "😀", "a" * 59, "a" * 60, "a" * 5000, "vip_level\n",
]

names = st.one_of(
    st.sampled_from(CRAFTED_NAMES),
    st.sampled_from(sorted(PROFILE_ATTRIBUTES)),
    st.text(max_size=12),
    st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True),
)

_numbers = st.one_of(
    st.integers(min_value=-(2**200), max_value=2**200),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([2**63, -(2**63) - 1, 2**64, 1e308, 10**15, 99999999999999.99995]),
)
scalars = st.one_of(st.none(), st.booleans(), _numbers, st.text(max_size=20))
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)

times = st.one_of(
    st.sampled_from([
        "2026-11-23T10:15:02.125Z", "2026-11-23T10:15:02+02:00", "9999-12-31T23:59:59Z",
        "9999-12-31T23:00:00-05:00", "0000-01-01T00:00:00Z", "0001-01-01T00:00:00+01:00", "2026-02-30T10:00:00Z",
        "2026-11-23T10:15:02", "2016-12-31T23:59:60Z", "", "yesterday",
    ]),
    st.text(max_size=30),
)

_event_types = st.one_of(st.sampled_from(sorted(EVENT_TYPES)), st.sampled_from(CRAFTED_NAMES), st.text(max_size=10))
_customer_ids = st.one_of(st.sampled_from(["c1", "c2", "c3", "", " ", "c\x00", "Ç"]), st.text(max_size=6))


@st.composite
def hostile_message(draw, kind: TopicKind) -> tuple[bytes | None, bytes | None]:
    """(key, value) of one message as an upstream could send it."""
    customer_id = draw(_customer_ids)
    shape = draw(st.sampled_from(["envelope", "envelope", "envelope", "bytes", "tombstone", "json"]))
    if shape == "bytes":
        return customer_id.encode(), draw(st.binary(max_size=40))
    if shape == "tombstone":
        return draw(st.one_of(st.just(customer_id.encode()), st.binary(max_size=4), st.none())), None
    if shape == "json":
        return customer_id.encode(), json.dumps(draw(json_values)).encode()
    envelope = {
        "schema_version": draw(st.sampled_from([1, 1, 1, 2, "1", None])),
        "message_id": draw(st.one_of(st.uuids().map(str), st.sampled_from(["m1", "", " ", "m\x00"]), st.text(max_size=8))),
        "tenant_id": draw(st.sampled_from([TENANT, TENANT, TENANT, "other", ""])),
        "customer_id": customer_id,
        "type": "profile" if kind is TopicKind.PROFILES and draw(st.booleans()) else draw(_event_types),
        "occurred_at": draw(times),
        "data": draw(st.dictionaries(names, json_values, max_size=6)),
    }
    for field in draw(st.lists(st.sampled_from(sorted(envelope)), max_size=1)):
        envelope.pop(field)
    key = draw(st.one_of(st.just(customer_id.encode()), st.just(customer_id.encode()), st.binary(max_size=4), st.none()))
    return key, json.dumps(envelope, ensure_ascii=draw(st.booleans())).encode()


def control_messages(kind: TopicKind, count: int = 3) -> list[tuple[bytes, bytes]]:
    """Valid messages of customers `ctl-<n>`, which must load whatever comes beside them."""
    out = []
    for n in range(count):
        customer = f"ctl-{n}"
        type_ = "profile" if kind is TopicKind.PROFILES else "customer_balance"
        data = {"email": f"{customer}@example.com"} if kind is TopicKind.PROFILES else {"real_balance": n, "currency": "EUR"}
        value = {
            "schema_version": 1, "message_id": f"{kind.value}-{customer}", "tenant_id": TENANT,
            "customer_id": customer, "type": type_, "occurred_at": "2026-11-23T10:15:02Z", "data": data,
        }
        out.append((customer.encode(), json.dumps(value).encode()))
    return out


def raw_table(kind: TopicKind, messages: list[tuple[bytes | None, bytes | None]], first_offset: int = 0) -> pa.Table:
    n = len(messages)
    return pa.Table.from_pydict(
        {
            "topic": [kind.topic(TENANT)] * n, "partition": [0] * n, "offset": list(range(first_offset, first_offset + n)),
            "timestamp": [1_795_000_000_000_000] * n, "key": [k for k, _ in messages], "value": [v for _, v in messages],
        },
        schema=RAW_MESSAGE_SCHEMA,
    )


def store_messages(store: RawStore, integration: str, kind: TopicKind, messages, first_offset: int = 0):
    table = raw_table(kind, messages, first_offset)
    return store.commit_batch(integration, kind, kind.topic(TENANT), table, {0: first_offset + len(messages)})


def files_under(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*") if p.is_file()}


def assert_warehouse_holds_only_what_input_entitles(db: duckdb.DuckDBPyConnection, names_sent: set[str]) -> None:
    """No table but the warehouse's own; no gig_ column but the contract's and the
    safe names sent; each catalogued attribute is in its column or in the map."""
    from gig_etl.lib.load import INTEGRATION_TABLES

    tables = {t for (t,) in db.execute(
        "SELECT table_name FROM duckdb_tables() WHERE NOT temporary AND table_name <> 'lake_schema'"
    ).fetchall()}
    assert tables <= set(INTEGRATION_TABLES), tables - set(INTEGRATION_TABLES)
    columns = [c for (c,) in db.execute(
        "SELECT column_name FROM duckdb_columns() WHERE table_name = 'profiles' AND starts_with(column_name, 'gig_')"
    ).fetchall()]
    known = {spec.column for spec in PROFILE_ATTRIBUTES.values()}
    for column in columns:
        assert is_safe_identifier(column), column
        assert column in known or column.removeprefix(ATTRIBUTE_PREFIX) in names_sent, column
    places = dict(db.execute("SELECT attribute, column_name FROM attribute_catalog").fetchall())
    for attribute, place in places.items():
        assert place == attribute or place == EXTRA_ATTRIBUTES, (attribute, place)
        if place == attribute:
            assert place in columns
