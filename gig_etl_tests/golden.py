"""What the load builds from one small, fixed backlog, kept as Parquet under
`golden/`: a change to the load must build the same tables from it, row for row.

The backlog has what the rules are about: chaos (re-sent, late, broken and
hostile messages), erasures, and customers who share an email, loaded by two
integrations of one lake (one mapping profiles by customer_id, one by email),
in raw batches small enough that a load makes several chunks of each topic.

When a rule changes on purpose, write the tables again and review their diff:

    .venv/bin/python -m gig_etl_tests.golden
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from gig_etl.contract import TopicKind
from gig_etl.lib.home import raw_root
from gig_etl.lib.identifiers import quote_identifier
from gig_etl.lib.load import INTEGRATION_TABLES, LoadCounts, load_integration
from gig_etl.lib.raw_store import RawStore
from gig_etl.lib.warehouse import connect_warehouse, embedded_lake
from gig_etl.simulate import SimulatedMessage, envelope, generate_traffic, message
from gig_etl_tests.hostile import CRAFTED_NAMES
from gig_etl_tests.pipeline import register
from gig_etl_tests.raw_helpers import store_batch

GOLDEN = Path(__file__).parent / "golden"
TENANT = "acme"
INTEGRATIONS = {"by_customer": "customer_id", "by_email": "email"}
BATCH_MESSAGES = 700
CHUNK_MESSAGES = 2_000
_NOW = datetime(2026, 11, 30, tzinfo=UTC)

# Columns that say when or under which name something loaded, not what: the
# seeded catalog rows are dated by the integration's approval.
_VARYING = {"loaded_batches": "batch_id, loaded_at"}


def backlog() -> list[SimulatedMessage]:
    traffic = list(generate_traffic(TENANT, 120, seed=19, chaos=0.05, now=_NOW))
    # Two customers of their own who take the email of a simulated one, and one
    # who gives it up again: under the email integration they share its profile.
    shared = "player100003@example.com"
    for customer, day, email in (("900001", 20, shared), ("900002", 21, shared), ("900002", 25, "own@example.com")):
        at = datetime(2026, 11, day, 12, tzinfo=UTC)
        traffic.append(message(TopicKind.PROFILES, customer, envelope(
            TENANT, customer, "profile", at, {"email": email, "allow_email": day % 2 == 0, "first_name": f"N{day}"},
            message_id=f"shared-{customer}-{day}",
        )))
    return traffic + _hostile()


def _hostile() -> list[SimulatedMessage]:
    """What chaos does not send: crafted attribute names, and one message for
    each of the other ways an envelope or a value goes wrong."""
    at = datetime(2026, 11, 22, 9, tzinfo=UTC)

    def profile(customer: str, data: dict | list, key: str | None = None, **fields) -> SimulatedMessage:
        sent = envelope(TENANT, customer, "profile", fields.pop("occurred_at", at), {}, f"hostile-{customer}")
        return message(TopicKind.PROFILES, customer if key is None else key, sent | {"data": data} | fields)

    named = [profile(f"9100{i:02d}", {name: f"v{i}", "vip_level": i % 11}) for i, name in enumerate(CRAFTED_NAMES)]
    repeated = (
        b'{"schema_version":1,"message_id":"hostile-repeated","tenant_id":"acme","customer_id":"910100",'
        b'"type":"profile","occurred_at":"2026-11-22T09:00:00Z","data":{"city":"A","city":"B"}}'
    )
    return named + [
        message(TopicKind.PROFILES, "910100", repeated),
        profile("910101", {"first_name": "Key"}, key="910199"),
        profile("910102", {"first_name": "Version"}, schema_version=2),
        profile("", {"first_name": "Blank"}, key="910103"),
        profile("910104", {"deposit_count": 2**63, "real_balance": 1e300}),
        profile("910105", {"date_of_birth": "1990-02-30"}),
        profile("910106", {"last_login_at": "2026-11-19t08:30:00z", "lucky_number": 2**64 - 1}, occurred_at="2026-11-22 09:00:00z"),
        profile("910107", {"first_name": "Leap"}, occurred_at="2026-11-22T09:00:60Z"),
        profile("910108", [1, 2]),
        message(TopicKind.PROFILES, b"", None),
        message(TopicKind.EVENTS, "910109", None),
        message(TopicKind.EVENTS, "910110", envelope(TENANT, "910110", "profile", at, {}, "hostile-event-type")),
        message(TopicKind.EVENTS, "910111", envelope(TENANT, "910111", "Unknown Thing", at, {"vip_level": 3}, "hostile-unknown")),
    ]


def load_backlog(home: Path) -> tuple[duckdb.DuckDBPyConnection, dict[str, LoadCounts], dict[str, str]]:
    """The backlog stored as raw batches and loaded by both integrations into the
    lake at `home`; returns the open lake, each load's totals and approval time."""
    messages = backlog()
    store = RawStore(raw_root(home))
    integrations = {name: register(home, name, TENANT, "b:1", identifier=ident) for name, ident in INTEGRATIONS.items()}
    for name in integrations:
        for start in range(0, len(messages), BATCH_MESSAGES):
            for kind in TopicKind:
                store_batch(store, name, TENANT, kind, messages[start:start + BATCH_MESSAGES], first_offset=start)
    db = connect_warehouse(embedded_lake(home))
    totals = {
        name: load_integration(db, store, integration, chunk_messages=CHUNK_MESSAGES).total
        for name, integration in integrations.items()
    }
    approved = {name: integration.approved_at for name, integration in integrations.items()}
    return db, totals, approved


def table_query(table: str, integration: str, approved_at: str) -> tuple[str, list]:
    """The integration's rows of `table` as the golden copy keeps them, and the
    query's parameters."""
    query = f"SELECT * {f'EXCLUDE ({_VARYING[table]})' if table in _VARYING else ''} FROM {quote_identifier(table)}"
    if table == "attribute_catalog":
        query = query.replace(
            "SELECT *", "SELECT * REPLACE (CASE WHEN created_at = ?::TIMESTAMPTZ THEN NULL ELSE created_at END AS created_at)"
        )
        return f"{query} WHERE integration = ?", [approved_at, integration]
    return f"{query} WHERE integration = ?", [integration]


def golden_path(integration: str, table: str) -> Path:
    return GOLDEN / integration / f"{table}.parquet"


def totals_path() -> Path:
    return GOLDEN / "load_totals.json"


def write(home: Path) -> None:
    db, totals, approved = load_backlog(home)
    with db:
        for name in INTEGRATIONS:
            (GOLDEN / name).mkdir(parents=True, exist_ok=True)
            for table in INTEGRATION_TABLES:
                query, params = table_query(table, name, approved[name])
                db.execute(
                    f"COPY ({query} ORDER BY ALL) TO '{golden_path(name, table)}' (FORMAT parquet, COMPRESSION zstd)",
                    params,
                )
    totals_path().write_text(json.dumps({n: vars(t) for n, t in totals.items()}, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as work:
        write(Path(work))
    print(f"wrote {GOLDEN}")
