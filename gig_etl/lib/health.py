"""Health verdicts on a run and on the warehouse, as plain functions (no Dagster)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta


@dataclass(frozen=True)
class Verdict:
    passed: bool
    description: str
    metadata: dict = field(default_factory=dict)


def quarantine_rate(read: int, quarantined: int, max_rate: float) -> Verdict:
    """A spike of bad input: more than `max_rate` of the messages a run read."""
    rate = quarantined / read if read else 0.0
    passed = rate <= max_rate
    return Verdict(
        passed,
        f"{quarantined:,} of {read:,} messages quarantined ({rate:.2%}); "
        f"{'within' if passed else 'above'} the {max_rate:.2%} threshold",
        {"rate": rate, "quarantined": quarantined, "read": read, "max_rate": max_rate},
    )


def freshness(newest: datetime | None, now: datetime, max_age: timedelta) -> Verdict:
    if newest is None:
        return Verdict(False, "no event loaded yet", {})
    age = now - newest
    passed = age <= max_age
    return Verdict(
        passed,
        f"newest event occurred {age.total_seconds() / 3600:.1f} h ago; threshold {max_age.total_seconds() / 3600:.0f} h",
        {"newest_occurred_at": newest.isoformat(), "age_hours": age.total_seconds() / 3600},
    )


def lag_trend(lags: list[int], tolerance: int) -> Verdict:
    """Lag before each of the latest runs, oldest first: growing run over run
    (every step up, by more than `tolerance` overall) means the drain falls behind."""
    if len(lags) < 3:
        return Verdict(True, f"{len(lags)} run(s) so far: too few to see a trend", {"lags": lags})
    growing = all(b > a for a, b in zip(lags, lags[1:])) and lags[-1] - lags[0] > tolerance
    return Verdict(
        not growing,
        f"lag before the last {len(lags)} runs: {', '.join(f'{x:,}' for x in lags)}"
        + ("; growing run over run" if growing else ""),
        {"lags": lags},
    )


def no_duplicates(duplicates: list[tuple[str, int]]) -> Verdict:
    """`profiles` has one row per (integration, profile_id)."""
    return Verdict(
        not duplicates,
        "every profile_id once" if not duplicates
        else f"{len(duplicates)} profile_id(s) on several rows, e.g. {duplicates[0][0]!r} x{duplicates[0][1]}",
        {"duplicated_profile_ids": len(duplicates)},
    )


def all_catalogued(missing: list[str]) -> Verdict:
    """Every event type in `events` has its row in `event_catalog`."""
    return Verdict(
        not missing,
        "every event type is in the catalog" if not missing else f"not in event_catalog: {', '.join(missing)}",
        {"missing": missing},
    )


def columns_within_limit(crowded_out: list[str], limit: int) -> Verdict:
    """No attribute that could have had a column went to extra_attributes for want of room."""
    return Verdict(
        not crowded_out,
        f"every attribute that may be a column has one (limit {limit})" if not crowded_out
        else f"{len(crowded_out)} attribute(s) kept in extra_attributes: profiles has {limit} attribute columns, "
        f"the limit; e.g. {crowded_out[0]!r}",
        {"crowded_out": len(crowded_out), "max_attribute_columns": limit},
    )


def no_future_events(future: int, newest_future: datetime | None, tolerance: timedelta) -> Verdict:
    """Events dated later than now by more than `tolerance`: clock skew or bad data
    upstream, never fresh data."""
    return Verdict(
        future == 0,
        f"no event dated more than {tolerance.total_seconds() / 60:.0f} min ahead" if not future
        else f"{future:,} event(s) dated more than {tolerance.total_seconds() / 60:.0f} min ahead, up to "
        f"{newest_future.isoformat() if newest_future else '?'}; freshness ignores them",
        {"future_events": future},
    )
