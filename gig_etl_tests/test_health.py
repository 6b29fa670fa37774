from datetime import UTC, datetime, timedelta

import pytest

from gig_etl.lib.health import (
    all_catalogued,
    freshness,
    lag_trend,
    no_duplicates,
    quarantine_rate,
)

NOW = datetime(2026, 11, 24, 12, tzinfo=UTC)


@pytest.mark.parametrize("read, quarantined, passed", [(1000, 50, True), (1000, 51, False), (0, 0, True)])
def test_quarantine_rate(read, quarantined, passed):
    assert quarantine_rate(read, quarantined, 0.05).passed is passed


def test_freshness():
    assert freshness(NOW - timedelta(hours=2), NOW, timedelta(hours=24)).passed
    stale = freshness(NOW - timedelta(hours=30), NOW, timedelta(hours=24))
    assert not stale.passed and "30.0 h ago" in stale.description
    assert not freshness(None, NOW, timedelta(hours=24)).passed


@pytest.mark.parametrize(
    "lags, passed",
    [([100], True), ([0, 50_000, 120_000], False), ([0, 50_000, 40_000], True), ([10, 20, 30], True)],
)
def test_lag_growing_run_over_run_fails(lags, passed):
    assert lag_trend(lags, tolerance=10_000).passed is passed


def test_duplicates_and_catalogue():
    assert no_duplicates([]).passed and not no_duplicates([("a@x.com", 2)]).passed
    assert all_catalogued([]).passed and "bonus" in all_catalogued(["bonus"]).description
