"""The asset checks through real runs: a passing and a failing case each."""

from datetime import UTC, datetime, timedelta

from gig_etl.contract import TopicKind
from gig_etl.defs.resources import HealthResource
from gig_etl.simulate import envelope, generate_traffic, message, produce_traffic
from gig_etl_tests.pipeline import check_results, materialize_integration, register

RECENT = datetime.now(UTC) - timedelta(days=3)
NOW = datetime.now(UTC) - timedelta(hours=1)


def refresh(home, name: str, health: HealthResource | None = None) -> dict:
    result = materialize_integration(home, name, health=health)
    assert result.success  # a failing check does not fail the run
    return {key: (e.passed, e.description) for key, e in check_results(result).items()}


def test_a_clean_recent_backlog_passes_every_check(kafka_broker, kafka_connection, tenant, isolated_home):
    register(isolated_home, "ok", tenant, kafka_broker.bootstrap_servers)
    produce_traffic(kafka_connection, tenant, generate_traffic(tenant, 30, seed=1, now=NOW, days=2))
    checks = refresh(isolated_home, "ok")
    assert set(checks) == {
        "profiles:lag_not_growing", "events:lag_not_growing", "quarantine:no_quarantine_spike", "events:fresh",
        "profiles:one_row_per_profile", "events:every_type_catalogued", "profiles:every_batch_readable",
        "events:every_batch_readable", "attribute_catalog:attribute_columns_within_limit", "events:no_future_events",
    }
    assert all(passed for passed, _ in checks.values()), checks


def test_bad_input_above_the_threshold_fails_the_quarantine_check(kafka_broker, kafka_connection, tenant, isolated_home):
    register(isolated_home, "noisy", tenant, kafka_broker.bootstrap_servers)
    produce_traffic(kafka_connection, tenant, generate_traffic(tenant, 30, seed=1, chaos=0.6, now=NOW, days=2))
    passed, description = refresh(isolated_home, "noisy")["quarantine:no_quarantine_spike"]
    assert not passed and "above the 5.00% threshold" in description
    assert refresh(isolated_home, "noisy", HealthResource(max_quarantine_rate=0.9))["quarantine:no_quarantine_spike"][0]


def test_an_old_newest_event_fails_freshness(kafka_broker, kafka_connection, tenant, isolated_home):
    register(isolated_home, "stale", tenant, kafka_broker.bootstrap_servers)
    produce_traffic(kafka_connection, tenant, generate_traffic(tenant, 10, seed=1, now=datetime(2026, 1, 6, tzinfo=UTC), days=5))
    passed, description = refresh(isolated_home, "stale")["events:fresh"]
    assert not passed and "threshold 24 h" in description


def test_two_customers_with_one_email_fail_one_row_per_profile(kafka_broker, kafka_connection, tenant, isolated_home):
    register(isolated_home, "by-email", tenant, kafka_broker.bootstrap_servers, identifier="email")
    shared = [
        message(TopicKind.PROFILES, c, envelope(tenant, c, "profile", RECENT, {"email": "twin@example.com"}))
        for c in ("1", "2")
    ]
    produce_traffic(kafka_connection, tenant, shared)
    passed, description = refresh(isolated_home, "by-email")["profiles:one_row_per_profile"]
    assert not passed and "'twin@example.com' x2" in description


def test_a_backlog_growing_run_over_run_fails_the_lag_check(kafka_broker, kafka_connection, tenant, isolated_home):
    register(isolated_home, "behind", tenant, kafka_broker.bootstrap_servers)
    health = HealthResource(lag_growth_tolerance=100)
    first_customer = 100_000
    verdicts = []
    for customers in (2, 12, 60):  # more arrives before each run than before the last
        produce_traffic(kafka_connection, tenant, generate_traffic(tenant, customers, seed=1, now=NOW, days=30, first_customer_id=first_customer))
        first_customer += customers
        verdicts.append(refresh(isolated_home, "behind", health)["events:lag_not_growing"])
    assert [passed for passed, _ in verdicts] == [True, True, False]
    assert "growing run over run" in verdicts[-1][1]


def test_events_from_the_future_are_counted_warned_about_and_not_fresh(kafka_broker, kafka_connection, tenant, isolated_home):
    # Before, three-week-ahead events made `fresh` say "newest event occurred -503.0 h ago" and pass.
    register(isolated_home, "skewed", tenant, kafka_broker.bootstrap_servers)
    ahead = datetime.now(UTC) + timedelta(days=21)
    old = datetime(2026, 1, 6, tzinfo=UTC)
    produce_traffic(kafka_connection, tenant, [
        message(TopicKind.EVENTS, "7", envelope(tenant, "7", "bonus", old, {"bonus_id": "b1"})),
        message(TopicKind.EVENTS, "7", envelope(tenant, "7", "bonus", ahead, {"bonus_id": "b2"})),
    ])
    checks = refresh(isolated_home, "skewed")
    passed, description = checks["events:no_future_events"]
    assert not passed and description.startswith("1 event(s) dated more than 5 min ahead, up to ")
    passed, description = checks["events:fresh"]
    assert not passed and "newest event occurred" in description and "-" not in description.split("occurred")[1][:3]
