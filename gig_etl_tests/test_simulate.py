import json
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta

import pytest

from gig_etl.contract import ENVELOPE_FIELDS, EVENT_TYPES, PROFILE_ATTRIBUTES, TopicKind
from gig_etl.simulate import CHAOS_KINDS, TrafficSummary, generate_traffic


NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def clean_traffic():
    return list(generate_traffic("acme", 300, seed=11, now=NOW))


@pytest.fixture(scope="module")
def chaotic_traffic():
    return list(generate_traffic("acme", 300, seed=11, chaos=0.1, now=NOW))


def decoded(messages):
    return [(m, json.loads(m.value)) for m in messages if m.value is not None]


def test_same_seed_same_messages_other_seed_other_messages(clean_traffic):
    assert list(generate_traffic("acme", 300, seed=11, now=NOW)) == clean_traffic
    assert list(generate_traffic("acme", 300, seed=12, now=NOW)) != clean_traffic


def test_simulated_lives_end_at_the_time_of_simulation(clean_traffic):
    # Before, the period began on a fixed day and lives ran on past its end, some
    # into the future; this week's deposits were none.
    times = [datetime.fromisoformat(envelope["occurred_at"]) for _, envelope in decoded(clean_traffic)]
    assert max(times) <= NOW
    assert min(times) >= NOW - timedelta(days=90)
    this_week = [
        envelope for _, envelope in decoded(clean_traffic)
        if envelope["type"] == "payment_deposit" and datetime.fromisoformat(envelope["occurred_at"]) > NOW - timedelta(days=7)
    ]
    assert len(this_week) > 10


def test_every_message_is_a_valid_envelope_of_its_topic(clean_traffic):
    for message, envelope in decoded(clean_traffic):
        assert set(envelope) == set(ENVELOPE_FIELDS)
        assert envelope["tenant_id"] == "acme"
        assert message.key == envelope["customer_id"].encode()
        assert datetime.fromisoformat(envelope["occurred_at"]).tzinfo is not None
        if message.kind is TopicKind.PROFILES:
            assert envelope["type"] == "profile"
            assert set(envelope["data"]) <= set(PROFILE_ATTRIBUTES)
        else:
            assert set(envelope["data"]) <= set(EVENT_TYPES[envelope["type"]].fields)
    ids = [e["message_id"] for _, e in decoded(clean_traffic)]
    assert len(ids) == len(set(ids))


def test_all_twelve_event_types_and_some_erasures(clean_traffic):
    summary = TrafficSummary()
    for message in clean_traffic:
        summary.record(message)
    assert set(summary.event_types) == set(EVENT_TYPES)
    assert summary.tombstones >= 1
    assert not summary.chaos


def test_events_and_profile_changes_agree(clean_traffic):
    """An event's attribute fields are also sent as a profile change at the same moment."""
    changes = defaultdict(list)
    for message, envelope in decoded(clean_traffic):
        if message.kind is TopicKind.PROFILES:
            changes[(envelope["customer_id"], envelope["occurred_at"])].append(envelope["data"])
    checked = 0
    for message, envelope in decoded(clean_traffic):
        if message.kind is TopicKind.EVENTS and envelope["type"] != "customer_created":
            shared = {k: v for k, v in envelope["data"].items() if k in PROFILE_ATTRIBUTES}
            if shared:
                same_moment = changes[(envelope["customer_id"], envelope["occurred_at"])]
                assert any(shared.items() <= data.items() for data in same_moment), envelope
                checked += 1
    assert checked > 1000


def test_payments_start_pending_and_money_has_at_most_four_decimals(clean_traffic):
    statuses = defaultdict(list)
    for _, envelope in decoded(clean_traffic):
        if envelope["type"].startswith("payment_"):
            statuses[envelope["data"]["payment_id"]].append(envelope["data"]["status"])
            assert round(envelope["data"]["amount"], 4) == envelope["data"]["amount"]
    assert statuses and all(s[0] == "pending" and len(s) >= 2 for s in statuses.values())
    assert any("rollback" in s for s in statuses.values()) or len(statuses) < 500


def test_text_holds_any_unicode(clean_traffic):
    names = {e["data"].get("first_name", "") + e["data"].get("last_name", "") for _, e in decoded(clean_traffic)}
    text = "".join(names)
    assert any("\u0590" <= ch <= "\u06ff" for ch in text)  # Hebrew or Arabic, right to left
    assert any(ord(ch) > 0xFFFF for ch in text)  # emoji


def test_chaos_mixes_in_every_misbehaviour_at_about_the_rate(chaotic_traffic, clean_traffic):
    kinds = Counter(m.chaos for m in chaotic_traffic if m.chaos)
    assert set(kinds) == set(CHAOS_KINDS)
    rate = sum(kinds.values()) / len(clean_traffic)
    assert 0.07 < rate < 0.13


def test_each_chaos_kind_misbehaves_as_named(chaotic_traffic):
    first_seen = {}
    for position, message in enumerate(chaotic_traffic):
        if message.chaos == "not_json":
            with pytest.raises(ValueError):
                json.loads(message.value)
            continue
        if message.value is None:
            continue
        envelope = json.loads(message.value)
        if message.chaos in ("duplicate", "duplicate_other_partition"):
            earlier = first_seen[envelope["message_id"]]
            assert chaotic_traffic[earlier].value == message.value
            assert (message.partition_shift != 0) == (message.chaos == "duplicate_other_partition")
        first_seen.setdefault(envelope["message_id"], position)
        if message.chaos == "no_zone":
            assert datetime.fromisoformat(envelope["occurred_at"]).tzinfo is None
        if message.chaos == "wrong_tenant":
            assert envelope["tenant_id"] != "acme"
        if message.chaos == "unknown_attribute":
            assert message.kind is TopicKind.PROFILES and not set(envelope["data"]) & set(PROFILE_ATTRIBUTES)
        if message.chaos == "unknown_event_type":
            assert envelope["type"] not in EVENT_TYPES
        if message.chaos == "wrong_type":
            assert any(isinstance(v, str) and ("," in v or v == "yes") for v in envelope["data"].values())


def test_late_messages_arrive_after_newer_changes_of_their_customer(chaotic_traffic):
    newest = {}
    late_and_older = 0
    for message in chaotic_traffic:
        if message.value is None or message.chaos in ("not_json", "no_zone", "duplicate", "duplicate_other_partition"):
            continue
        envelope = json.loads(message.value)
        moment = datetime.fromisoformat(envelope["occurred_at"])
        customer = envelope["customer_id"]
        if message.chaos == "late" and moment < newest.get(customer, moment):
            late_and_older += 1
        newest[customer] = max(moment, newest.get(customer, moment))
    # Not exact: the newer change a late message waits for may itself have lost
    # its zone, and such a time cannot be compared here.
    late = sum(m.chaos == "late" for m in chaotic_traffic)
    assert late > 100 and late_and_older >= 0.97 * late


def test_chaos_rate_is_validated():
    with pytest.raises(ValueError):
        next(generate_traffic("acme", 1, chaos=1.5))
