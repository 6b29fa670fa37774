"""A hand-written scenario with a case for every warehouse rule, through Dagster
against the real broker; exact table contents, a no-op second run, and rebuild."""

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

from gig_etl.cli import main
from gig_etl.contract import PROFILE_ATTRIBUTES, TopicKind
from gig_etl.defs.marts.assets import VIEWS
from gig_etl.defs.warehouse.assets import WAREHOUSE_TABLES
from gig_etl.lib.home import raw_root
from gig_etl.lib.kafka import KafkaConnection
from gig_etl.lib.parse import QuarantineReason
from gig_etl.lib.raw_store import RawStore
from gig_etl.lib.warehouse import embedded_lake, open_lake
from gig_etl.simulate import SimulatedMessage, envelope, message, produce_traffic
from gig_etl_tests.pipeline import asset_metadata, materialize_integration, register, warehouse_rows
from gig_etl_tests.raw_helpers import raw_messages

P, E = TopicKind.PROFILES, TopicKind.EVENTS
NOW = datetime.now(UTC).replace(microsecond=0)


def ago(days: float) -> datetime:
    return NOW - timedelta(days=days)


@dataclass
class Scenario:
    tenant: str
    messages: list[SimulatedMessage] = field(default_factory=list)
    bad: list[tuple[bytes | None, str]] = field(default_factory=list)  # (raw value, reason) quarantined
    duplicates: int = 0

    def profile(self, customer: str, at: datetime | str, message_id: str | None = None, shift: int = 0, **data) -> dict:
        value = envelope(self.tenant, customer, "profile", at, data, message_id)
        self.messages.append(message(P, customer, value, shift))
        return value

    def event(self, customer: str, type_: str, at: datetime, message_id: str | None = None, **data) -> dict:
        value = envelope(self.tenant, customer, type_, at, data, message_id)
        self.messages.append(message(E, customer, value))
        return value

    def quarantined(self, kind: TopicKind, customer: str, value: dict | bytes | None, reason: str) -> None:
        sent = message(kind, customer, value)
        self.messages.append(sent)
        self.bad.append((sent.value, reason))

    def resend(self, value: dict, kind: TopicKind, shift: int = 0) -> None:
        self.messages.append(message(kind, value["customer_id"], value, shift))
        self.duplicates += 1


def registration(**overrides) -> dict:
    return {
        "username": "player", "email": None, "country": "MT", "currency": "EUR", "vip_level": 0,
        "is_test_account": False, "kyc_status": "unverified", "is_blocked": False, "allow_email": True,
    } | overrides


def payment(kind: str, payment_id: str, amount, status: str, lifetime, count) -> dict:
    prefix = "deposit" if kind == "payment_deposit" else "withdrawal"
    return {
        "payment_id": payment_id, "amount": amount, "currency": "EUR", "payment_method": "card", "status": status,
        f"lifetime_{prefix}_amount": lifetime, f"{prefix}_count": count,
    }


def first_run(s: Scenario) -> dict[str, dict]:
    """Everything produced before the first run; returns messages to re-send later."""
    c1 = s.profile("200001", ago(100), **registration(
        username="anna", email="anna@example.com", mobile_phone="+35699123456", first_name="Zoë 🎰",
        last_name="בורג", birth_date="1990-04-01", registration_date="2026-08-16T10:00:00+02:00", vip_level=1,
        real_balance=0, tags=[], allow_sms=False, self_excluded_until=None,
    ))
    vip2 = s.profile("200001", ago(50), vip_level=2)  # a partial change: only vip_level
    s.profile("200001", ago(49), mobile_phone=None)  # null clears
    s.profile("200001", ago(48), loyalty_tier="gold")  # an attribute the contract does not know
    s.profile("200001", ago(48), favourite_number=7)
    s.event("200001", "payment_deposit", ago(10), **payment("payment_deposit", "P2", 50, "approved", 50, 1))
    s.event("200001", "payment_deposit", ago(9), **payment("payment_deposit", "P2", 50, "rollback", 0, 0))
    s.event("200001", "payment_deposit", ago(3), **payment("payment_deposit", "P1", 100, "pending", 0, 0))
    p1 = s.event("200001", "payment_deposit", ago(3) + timedelta(minutes=1),
                 **payment("payment_deposit", "P1", 100, "approved", 100, 1))
    s.event("200001", "payment_deposit", ago(2), **payment("payment_deposit", "P3", 999, "declined", 100, 1))
    s.event("200001", "payment_withdrawal", ago(20) - timedelta(hours=1),
            **payment("payment_withdrawal", "W1", 30, "pending", 0, 0))
    s.event("200001", "payment_withdrawal", ago(20), **payment("payment_withdrawal", "W1", 30, "approved", 30, 1))
    s.event("200001", "game_activity", ago(5), casino_lifetime_win=12.5, game_id="starburst", win_amount=12.5, currency="EUR")
    s.event("200001", "customer_consent", ago(4), allow_sms=True)  # an event updates the subscription
    s.event("200001", "mission_completed", ago(1), mission_id="m1")  # an event type the contract does not know

    s.profile("200002", ago(90), **registration(username="blocked"))
    s.event("200002", "customer_blocks", ago(30), is_blocked=True, block_reason="fraud", self_excluded_until=None)
    s.profile("200002", ago(29), favourite_number="seven")  # a second type: widens to VARCHAR
    s.profile("200003", ago(90), **registration(username="excluded"))
    s.profile("200003", ago(30), self_excluded_until=(NOW + timedelta(days=180)).isoformat())
    s.profile("200004", ago(90), **registration(username="tester", is_test_account=True))

    s.profile("200005", ago(90), **registration(username="forget-me", email="gone@example.com"))
    s.event("200005", "customer_created", ago(90), registration_date=ago(90).isoformat(), country="MT",
            currency="EUR", brand="acme")
    s.messages.append(message(P, "200005", None))  # erased

    s.profile("200006", ago(10), username="nomail")  # no email yet
    s.event("200006", "customer_balance", ago(10), real_balance=5, bonus_balance=0, currency="EUR")

    t = s.tenant
    s.quarantined(E, "200001", envelope(t, "200001", "customer_balance", ago(1), {"real_balance": "12,50", "bonus_balance": 0, "currency": "EUR"}),
                  "real_balance '12,50' is not a decimal number")
    s.quarantined(E, "200002", envelope(t, "200002", "payment_deposit", ago(1), payment("payment_deposit", "P9", "12,50", "approved", 0, 0)),
                  "amount '12,50' is not a decimal number")
    s.quarantined(E, "200001", b"\xff\xfe{", "value is not UTF-8 text")
    s.quarantined(P, "200001", b'{"schema_version":1,"message_id":"x', "value is not a JSON object")
    s.quarantined(P, "200001", b"[1,2]", "value is not a JSON object")
    missing_id = envelope(t, "200001", "profile", ago(1), {"vip_level": 3})
    del missing_id["message_id"]
    s.quarantined(P, "200001", missing_id, "envelope field message_id is missing")
    s.quarantined(E, "200001", envelope("other-casino", "200001", "bonus", ago(1), {"bonus_id": "b"}),
                  f"tenant_id 'other-casino' differs from the integration tenant '{t}'")
    s.quarantined(P, "200001", envelope(t, "200001", "profile", "2026-11-20T10:00:00", {"vip_level": 3}),
                  "occurred_at '2026-11-20T10:00:00' has no zone offset")
    s.quarantined(P, "200001", envelope(t, "200001", "profile", ago(1), {"vip_level": "high"}),
                  "vip_level 'high' is not an integer from 0 to 10")
    s.quarantined(P, "200001", envelope(t, "200001", "profile", ago(1), {"vip_level": 11}),
                  "vip_level '11' is not an integer from 0 to 10")
    s.quarantined(P, "200001", envelope(t, "200001", "profile", ago(1), {"kyc_status": "maybe"}),
                  "kyc_status 'maybe' is not one of unverified, pending, verified, rejected")
    s.quarantined(P, "200001", envelope(t, "200001", "profile", ago(1), {"vip_level": 3}) | {"schema_version": 2},
                  "unsupported schema_version 2")
    s.quarantined(E, "200001", envelope(t, "200001", "profile", ago(1), {"vip_level": 3}), "type 'profile' on the events topic")
    s.quarantined(P, "200001", envelope(t, "200001", "bonus", ago(1), {"bonus_id": "b"}), "type 'bonus' on the profiles topic")
    s.quarantined(E, "200001", None, "null value on the events topic")
    return {"vip2": vip2, "p1": p1, "c1": c1}


def second_run(s: Scenario, sent: dict[str, dict]) -> None:
    s.resend(sent["vip2"], P, shift=1)  # the same message_id, later, on another partition
    s.resend(sent["p1"], E)  # ... and on the same partition
    s.profile("200001", ago(60), vip_level=5)  # late: older than vip_level 2, must not win
    s.profile("200001", ago(40), kyc_status="verified")
    s.profile("200006", ago(5), email="c6@example.com")  # the identifier arrives
    s.event("200005", "customer_balance", ago(95), real_balance=1, bonus_balance=0, currency="EUR")  # about the erased
    bad_about_erased = message(E, "200005", b"{not json")  # quarantined, but not kept: the customer is erased
    s.messages.append(bad_about_erased)


def run(home, integration: str) -> dict:
    result = materialize_integration(home, integration)
    assert result.success
    return asset_metadata(result)


def snapshot(home, integration: str) -> dict[str, list]:
    return warehouse_rows(home, integration, (*WAREHOUSE_TABLES, *VIEWS))


def query(home, sql: str, *params) -> list[tuple]:
    with open_lake(embedded_lake(home), read_only=True) as db:
        db.execute("SET TimeZone = 'UTC'").fetchall()
        return db.execute(sql, list(params)).fetchall()


@pytest.fixture(scope="module")
def scenario(kafka_broker, tmp_path_factory):
    """Both runs, for two integrations on one tenant: `scn` maps profiles by
    customer_id, `scn-email` by email. Yields the home and what was produced."""
    home = tmp_path_factory.mktemp("scenario")
    tenant = f"scenario-{NOW.timestamp():.0f}"
    register(home, "scn", tenant, kafka_broker.bootstrap_servers)
    register(home, "scn-email", tenant, kafka_broker.bootstrap_servers, identifier="email")
    connection = KafkaConnection(kafka_broker.bootstrap_servers)

    first = Scenario(tenant)
    sent = first_run(first)
    produce_traffic(connection, tenant, first.messages)
    runs = {"first": {name: run(home, name) for name in ("scn", "scn-email")}}
    email_before = snapshot(home, "scn-email")

    second = Scenario(tenant)
    second_run(second, sent)
    produce_traffic(connection, tenant, second.messages)
    runs["second"] = {name: run(home, name) for name in ("scn", "scn-email")}
    return {"home": home, "tenant": tenant, "first": first, "second": second, "runs": runs, "email_before": email_before}


def test_every_message_is_accounted_for(scenario):
    first, second = scenario["first"], scenario["second"]
    # quarantine is loaded from both topics: its accounting is the run's.
    one, two = scenario["runs"]["first"]["scn"]["quarantine"], scenario["runs"]["second"]["scn"]["quarantine"]
    assert (one["read"], one["quarantined"], one["duplicates"]) == (len(first.messages), len(first.bad), 0)
    assert one["loaded"] == len(first.messages) - len(first.bad)
    assert one["erasures"] == 1
    assert (two["read"], two["duplicates"], two["quarantined"]) == (len(second.messages), 2, 1)
    assert two["loaded"] == len(second.messages) - 3
    assert two["erased_messages"] == 1  # the late event about the erased customer
    # Counted by reason code, and what an erasure took out of quarantine is said.
    for run in (one, two):
        assert sum(record.data["messages"] for record in run["quarantined_by_reason"].records) == run["quarantined"]
        assert all(record.data["reason_code"] in set(QuarantineReason) for record in run["quarantined_by_reason"].records)
    # What quarantine lacks of what was quarantined is what the runs said was erased.
    [(held,)] = query(scenario["home"], "SELECT count(*) FROM quarantine WHERE integration = 'scn'")
    erased = one["quarantine_erased"] + two["quarantine_erased"]
    assert erased > 0 and held == one["quarantined"] + two["quarantined"] - erased


def test_each_tables_metadata_has_its_own_topics_counts_and_its_columns(scenario):
    tables = scenario["runs"]["first"]["scn"]
    first = scenario["first"]
    profiles_topic = sum(1 for m in first.messages if m.kind is TopicKind.PROFILES)
    assert tables["profiles"]["read"] == tables["subscriptions"]["read"] == profiles_topic
    assert tables["events"]["read"] == len(first.messages) - profiles_topic
    assert tables["quarantine"]["read"] == len(first.messages)
    columns = {c.name: c for c in tables["profiles"]["dagster/column_schema"].columns}
    assert columns["gig_email"].type == "VARCHAR" and "email" in columns["gig_email"].description
    assert columns["profile_id"].description
    assert isinstance(tables["events"]["newest_occurred_at"], float)  # a Dagster timestamp, which the UI plots
    assert isinstance(tables["events"]["newest_event_age_hours"], float)


def test_profiles(scenario):
    home = scenario["home"]
    rows = query(
        home,
        "SELECT profile_id, customer_id, gig_username, gig_vip_level, gig_mobile_phone, gig_first_name, gig_last_name, "
        "gig_birth_date, gig_kyc_status, gig_lifetime_deposit_amount, gig_deposit_count, gig_lifetime_withdrawal_amount, "
        "gig_casino_lifetime_win, gig_allow_sms, gig_tags, gig_is_blocked, gig_loyalty_tier, gig_favourite_number, "
        "gig_real_balance, gig_registration_date FROM profiles WHERE integration = 'scn' ORDER BY profile_id",
    )
    c1 = (
        "200001", "200001", "anna", 2, None, "Zoë 🎰", "בורג", date(1990, 4, 1), "verified", Decimal("100.0000"), 1,
        Decimal("30.0000"), Decimal("12.5000"), True, [], False, "gold", "7", Decimal("0.0000"),
        datetime(2026, 8, 16, 8, 0, tzinfo=UTC),
    )
    assert rows[0] == c1
    assert [r[:4] for r in rows[1:]] == [
        ("200002", "200002", "blocked", 0),
        ("200003", "200003", "excluded", 0),
        ("200004", "200004", "tester", 0),
        ("200006", "200006", "nomail", None),
    ]
    assert [r[15] for r in rows] == [False, True, False, False, None]  # is_blocked, set by an event for 200002
    assert rows[1][17] == "seven" and rows[4][18] == Decimal("5.0000")
    [(updated_at,)] = query(home, "SELECT updated_at FROM profiles WHERE integration = 'scn' AND customer_id = '200001'")
    # The newest attribute change: P3, declined, still carries lifetime_deposit_amount.
    assert updated_at == ago(2)


def test_identifier_mapping_holds_back_a_profile_until_its_identifier_arrives(scenario):
    before = {row[1] for row in scenario["email_before"]["profiles"]}
    assert "c6@example.com" not in before and "anna@example.com" in before
    assert [e for e in scenario["email_before"]["events"] if e[4] == "200006"][0][5] is None  # no profile_id yet
    rows = query(scenario["home"], "SELECT profile_id, customer_id FROM profiles WHERE integration = 'scn-email' ORDER BY 1")
    assert rows == [("anna@example.com", "200001"), ("c6@example.com", "200006")]  # 200002-4 have no email
    assert query(
        scenario["home"], "SELECT profile_id FROM events WHERE integration = 'scn-email' AND customer_id = '200006'"
    ) == [("c6@example.com",)]


def test_subscriptions_and_marketable_profiles(scenario):
    home = scenario["home"]
    assert query(home, "SELECT profile_id, channel, subscribed FROM subscriptions WHERE integration = 'scn' ORDER BY 1, 2") == [
        ("200001", "email", True), ("200001", "sms", True),  # sms: the consent event is newer than the registration
        ("200002", "email", True), ("200003", "email", True), ("200004", "email", True),
    ]
    # Blocked (200002), self-excluded (200003) and test (200004) profiles never receive marketing.
    assert query(home, "SELECT profile_id, channel FROM marketable_profiles WHERE integration = 'scn' ORDER BY ALL") == [
        ("200001", "email"), ("200001", "sms"),
    ]


def test_events_and_event_catalog(scenario):
    home = scenario["home"]
    events = query(
        home,
        "SELECT customer_id, profile_id, event_type, event_name, count(*) FROM events WHERE integration = 'scn' "
        "GROUP BY ALL ORDER BY ALL",
    )
    assert events == [
        ("200001", "200001", "customer_consent", "Customer Consent", 1),
        ("200001", "200001", "game_activity", "Game Activity", 1),
        ("200001", "200001", "mission_completed", "mission_completed", 1),
        ("200001", "200001", "payment_deposit", "Payment - Deposit", 5),  # the re-sent P1 once
        ("200001", "200001", "payment_withdrawal", "Payment - Withdrawal", 2),
        ("200002", "200002", "customer_blocks", "Customer Blocks", 1),
        ("200006", "200006", "customer_balance", "Customer Balance", 1),
    ]
    [(props,)] = query(home, "SELECT properties->>'game_id' FROM events WHERE integration = 'scn' AND event_type = 'game_activity'")
    assert props == "starburst"
    catalog = query(home, "SELECT event_type, event_name, first_seen_at, last_seen_at, event_count FROM event_catalog "
                          "WHERE integration = 'scn' ORDER BY 1")
    assert [(t, n, c) for t, n, _, _, c in catalog] == [(t, n, c) for _, _, t, n, c in sorted(events, key=lambda e: e[2])]
    deposits = [row for row in catalog if row[0] == "payment_deposit"][0]
    assert (deposits[2], deposits[3]) == (ago(10), ago(2))


def test_attribute_catalog_has_the_contract_and_the_new_attributes(scenario):
    rows = dict(query(scenario["home"], "SELECT attribute, data_type FROM attribute_catalog WHERE integration = 'scn'"))
    assert rows == {s.column: s.type.duckdb_type for s in PROFILE_ATTRIBUTES.values()} | {
        "gig_loyalty_tier": "VARCHAR", "gig_favourite_number": "VARCHAR",  # 7 then "seven": widened
    }


def test_quarantine_keeps_each_bad_message_untouched_with_its_reason(scenario):
    rows = query(scenario["home"], "SELECT raw_value, reason FROM quarantine WHERE integration = 'scn'")
    assert sorted(rows, key=repr) == sorted(scenario["first"].bad, key=repr)
    codes = query(scenario["home"], "SELECT DISTINCT reason_code FROM quarantine WHERE integration = 'scn'")
    assert codes and all(code in set(QuarantineReason) for (code,) in codes)


def test_player_value(scenario):
    [row] = query(
        scenario["home"],
        "SELECT deposits_7d, deposit_amount_7d, deposits_30d, deposits_90d, withdrawals_7d, withdrawals_30d, "
        "withdrawal_amount_30d, withdrawals_90d, net_deposit, last_deposit_at, last_activity_at, casino_lifetime_win, "
        "sports_lifetime_win FROM player_value WHERE integration = 'scn' AND profile_id = '200001'",
    )
    # P1 approved counts once; P2 was rolled back and P3 declined; W1 was approved 20 days ago.
    assert row == (1, Decimal("100.0000"), 1, 1, 0, 1, Decimal("30.0000"), 1, Decimal("70.0000"), ago(3), ago(1),
                   Decimal("12.5000"), None)
    others = query(scenario["home"], "SELECT profile_id, deposits_90d, net_deposit FROM player_value "
                                     "WHERE integration = 'scn' AND profile_id <> '200001' ORDER BY 1")
    assert others == [(p, 0, Decimal("0.0000")) for p in ("200002", "200003", "200004", "200006")]


def test_each_views_row_count_in_a_runs_metadata_is_the_rows_it_shows(scenario):
    home = scenario["home"]
    metadata = asset_metadata(materialize_integration(home, "scn"))
    for view in VIEWS:
        [(rows,)] = query(home, f"SELECT count(*) FROM {view} WHERE integration = 'scn'")
        assert metadata[view]["dagster/row_count"] == rows > 0, view


def test_erasure_removes_the_customer_everywhere_raw_included(scenario):
    home = scenario["home"]
    for table in ("profiles", "events", "quarantine"):
        assert query(home, f"SELECT count(*) FROM {table} WHERE customer_id = '200005'"
                     if table != "quarantine" else "SELECT count(*) FROM quarantine WHERE key = '200005'::BLOB") == [(0,)]
    assert query(home, "SELECT count(*) FROM subscriptions WHERE profile_id IN ('200005', 'gone@example.com')") == [(0,)]
    raw = raw_messages(RawStore(raw_root(home)), "scn").filter(pl.col("key") == b"200005")
    assert raw["value"].to_list() == [None]  # only the tombstone is left


def test_a_third_run_changes_nothing_and_rebuild_gives_the_same_tables(scenario):
    home = scenario["home"]
    before = snapshot(home, "scn")
    third = run(home, "scn")["quarantine"]
    assert (third["read"], third["loaded"]) == (0, 0)
    assert snapshot(home, "scn") == before

    result = CliRunner().invoke(main, ["rebuild", "--integration", "scn"], env={"GIG_ETL_HOME": str(home)})
    assert result.exit_code == 0, result.output
    assert result.output.startswith("scn: rebuilt from 4 raw batches")
    assert snapshot(home, "scn") == before


def readme_queries() -> list[str]:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme.split("## Querying the warehouse", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sql\n(.*?)```", section, re.S)


def test_the_readme_queries_answer_on_the_scenario(scenario):
    queries = [q.replace("'demo'", "'scn'") for q in readme_queries()]
    assert len(queries) == 5
    audience, by_country, consent, volume, excluded = (query(scenario["home"], q) for q in queries)
    assert audience == []  # 200001 deposited 3 days ago; nobody else deposited
    assert by_country == [("MT", "EUR", 1, Decimal("100.0000"))]
    assert consent == [("email", 4, 100.0), ("sms", 1, 100.0)]
    def day(moment: datetime) -> datetime:
        return moment.replace(hour=0, minute=0, second=0)

    assert sum(n for _, _, n in volume) == 12
    assert (day(ago(1)), "mission_completed", 1) in volume
    assert [(name, n) for d, name, n in volume if d == day(ago(10))] == [("Customer Balance", 1), ("Payment - Deposit", 1)]
    assert [row[0] for row in excluded] == ["200003"]
