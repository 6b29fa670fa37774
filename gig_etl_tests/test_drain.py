import threading
import time
from collections import Counter

import duckdb
import pyarrow.parquet as pq
import pytest

from gig_etl.contract import TopicKind, tenant_topics
from gig_etl.defs.raw.assets import raw_topics
from gig_etl.defs.resources import KafkaResource
from gig_etl.lib.drain import (
    DrainLimits,
    OffsetGap,
    PartitionPlan,
    any_at_or_past_end,
    drain_topics,
    plan_partitions,
)
from gig_etl.lib.home import raw_root
from gig_etl.lib.kafka import KafkaConnection
from gig_etl.lib.raw_store import RawStore
from gig_etl.lib.registry import IntegrationRegistry, registry_path
from gig_etl.simulate import generate_traffic, produce_traffic
from gig_etl_tests.pipeline import (
    asset_metadata,
    failure_text,
    materialize_integration,
    register,
)
from gig_etl_tests.raw_helpers import raw_messages

INTEGRATION = "it"


def test_plan_reads_from_recorded_offsets_up_to_the_high_watermark():
    plans, gaps = plan_partitions({0: 40, 1: 7}, {0: (0, 100), 1: (0, 7), 2: (5, 9)})
    assert plans == [PartitionPlan(0, 40, 100, 0), PartitionPlan(1, 7, 7, 0), PartitionPlan(2, 5, 9, 5)]
    assert gaps == []


def test_plan_reports_offsets_the_broker_deleted_before_they_were_read():
    plans, gaps = plan_partitions({0: 10}, {0: (25, 30)})
    assert plans == [PartitionPlan(0, 25, 30, 25)]
    assert gaps == [OffsetGap(0, 10, 25)]


def test_plan_tolerates_a_high_watermark_short_of_the_recorded_offset():
    # Tansu reports the last record batch's base offset + 1 as high watermark.
    plans, _ = plan_partitions({0: 15}, {0: (0, 13)})
    assert plans == [PartitionPlan(0, 15, 15, 0)]


@pytest.mark.parametrize("bound", ["batch_max_messages", "batch_max_bytes", "consume_max_messages"])
def test_a_bound_below_one_is_refused_not_a_drain_that_never_ends(bound):
    # A batch with no room would take nothing from a poll, again and again.
    with pytest.raises(ValueError, match=f"{bound} must be at least 1, not 0"):
        DrainLimits(**{bound: 0})


@pytest.mark.parametrize(
    "partitions, offsets, reached",
    [
        ([1, 1], [40, 41], False),  # past partition 0's end, not its own
        ([0, 0], [8, 9], False),
        ([0, 0], [9, 10], True),
        ([0, 1], [9, 99], False),  # a poll of two partitions
        ([1, 0], [50, 10], True),
        ([1, 0], [100, 3], True),
    ],
)
def test_a_poll_reaches_an_end_only_where_a_message_is_at_or_past_its_own_partitions_end(partitions, offsets, reached):
    assert any_at_or_past_end(partitions, offsets, {0: 10, 1: 100}) is reached


def drain(bootstrap_servers: str, tenant: str, home, **kafka_settings) -> dict[str, dict]:
    """One real Dagster run of both raw assets; returns each asset's metadata."""
    if INTEGRATION not in {i.name for i in IntegrationRegistry(registry_path(home)).list()}:
        register(home, INTEGRATION, tenant, bootstrap_servers)
    result = materialize_integration(home, INTEGRATION, [raw_topics], **kafka_settings)
    assert result.success
    return asset_metadata(result)


def produced_values(messages) -> dict[str, Counter]:
    values = {kind.value: Counter() for kind in TopicKind}
    for m in messages:
        values[m.kind.value][m.value] += 1
    return values


def test_drain_keeps_exactly_the_produced_messages_and_a_second_run_reads_nothing(
    kafka_broker, kafka_connection, tenant, isolated_home
):
    messages = list(generate_traffic(tenant, 300, seed=3, chaos=0.05))
    before = time.time()
    produce_traffic(kafka_connection, tenant, messages)

    first = drain(kafka_broker.bootstrap_servers, tenant, isolated_home)
    for kind in ("profiles", "events"):  # read to the end: nothing left behind, the newest just now
        assert first[kind]["lag_after"] == 0
        assert before - 1 <= first[kind]["newest_message_at"] <= time.time()
        assert 0 <= first[kind]["newest_message_age_s"] < 120

    raw = raw_messages(RawStore(raw_root(isolated_home)), INTEGRATION)
    assert raw.height == len(messages)
    assert first["profiles"]["rows"] + first["events"]["rows"] == len(messages)
    assert raw.select("topic", "partition", "offset").is_unique().all()
    for topic, partition, offsets in raw.group_by("topic", "partition").agg("offset").rows():
        assert sorted(offsets) == list(range(len(offsets))), (topic, partition)
    expected = produced_values(messages)
    for kind in TopicKind:
        kept = raw.filter(topic=kind.topic(tenant))
        assert Counter(kept["value"].to_list()) == expected[kind.value]
        assert set(kept["key"].to_list()) <= {m.key for m in messages}

    second = drain(kafka_broker.bootstrap_servers, tenant, isolated_home)
    assert second["profiles"]["rows"] == second["events"]["rows"] == 0
    assert second["profiles"]["newest_message_at"] == "none" and second["profiles"]["lag_after"] == 0
    assert raw_messages(RawStore(raw_root(isolated_home)), INTEGRATION).height == len(messages)


def test_a_drain_removes_its_own_unrecorded_files_and_leaves_another_integrations(
    kafka_broker, kafka_connection, tenant, isolated_home
):
    produced = produce_traffic(kafka_connection, tenant, generate_traffic(tenant, 20, seed=4)).total
    raw = raw_root(isolated_home)
    # A crash's leftover of this integration, and a file another integration's drain,
    # running at the same time under its own lock, has written but not yet recorded.
    leftover = raw / INTEGRATION / "events" / "date=2026-01-01" / "crashed.parquet.tmp"
    in_flight = raw / "other" / "events" / "date=2026-01-01" / "writing.parquet.tmp"
    for path in (leftover, in_flight):
        path.parent.mkdir(parents=True)
        path.write_bytes(b"PAR1")

    drain(kafka_broker.bootstrap_servers, tenant, isolated_home)

    assert not leftover.exists()
    assert in_flight.exists()
    assert raw_messages(RawStore(raw), INTEGRATION).height == produced


def test_a_missing_topic_is_a_run_with_zero_rows(kafka_broker, tenant, isolated_home):
    metadata = drain(kafka_broker.bootstrap_servers, tenant, isolated_home)
    assert metadata["profiles"]["rows"] == metadata["events"]["rows"] == 0
    assert metadata["events"]["topic_found"] == "False"


def test_batches_are_bounded_and_readable_by_duckdb(kafka_broker, kafka_connection, tenant, isolated_home):
    messages = list(generate_traffic(tenant, 60, seed=5))
    produce_traffic(kafka_connection, tenant, messages)
    drain(kafka_broker.bootstrap_servers, tenant, isolated_home, batch_max_messages=1_000)

    batches = RawStore(raw_root(isolated_home)).batches(INTEGRATION)
    # Exactly the bound, a poll split where a batch is full: two batches fill a load's chunk.
    assert max(b.rows for b in batches) == 1_000
    assert len(batches) >= -(-len(messages) // 1_000)
    assert sum(b.rows for b in batches) == len(messages)
    schema = pq.read_schema(batches[0].path)
    assert str(schema.field("timestamp").type) == "timestamp[us, tz=UTC]"
    glob = str(raw_root(isolated_home) / INTEGRATION / "*" / "*" / "*.parquet")
    [(count, oldest)] = duckdb.connect().execute(f"SELECT count(*), min(timestamp) FROM read_parquet('{glob}')").fetchall()
    assert count == len(messages)
    assert abs(time.time() - oldest.timestamp()) < 600


def test_a_drain_does_not_wait_for_more_messages_than_it_has_left_to_read(
    kafka_broker, kafka_connection, tenant, isolated_home
):
    # consume() returns once it has the count asked for or its timeout has passed:
    # asking for a full poll when fewer were left waited out the timeout at every drain's end.
    produced = produce_traffic(kafka_connection, tenant, generate_traffic(tenant, 20, seed=6)).total
    limits = DrainLimits(consume_max_messages=500, consume_timeout_s=60.0)
    assert produced % limits.consume_max_messages  # the last poll is a partial one
    started = time.monotonic()
    with KafkaResource().consumer(KafkaConnection(kafka_broker.bootstrap_servers), INTEGRATION) as consumer:
        results = drain_topics(consumer, RawStore(raw_root(isolated_home)), INTEGRATION, tenant_topics(tenant), limits)
    assert sum(r.rows for r in results.values()) == produced
    assert time.monotonic() - started < limits.consume_timeout_s / 2


def test_a_drain_ends_at_the_partition_ends_the_broker_reports_not_after_an_idle_wait(
    kafka_broker, kafka_connection, tenant, isolated_home
):
    # Past the noted high watermarks a drain reads on to each partition's end (Tansu's
    # watermark can fall short of it). The broker reports that end: no idle wait is needed
    # to tell, and an idle wait this long would fail the test.
    produced = produce_traffic(kafka_connection, tenant, generate_traffic(tenant, 20, seed=7)).total
    limits = DrainLimits(tail_idle_s=30.0, tail_max_s=60.0)
    store = RawStore(raw_root(isolated_home))
    with KafkaResource().consumer(KafkaConnection(kafka_broker.bootstrap_servers), INTEGRATION) as consumer:
        started = time.monotonic()
        first = drain_topics(consumer, store, INTEGRATION, tenant_topics(tenant), limits)
        first_took = time.monotonic() - started
        started = time.monotonic()
        second = drain_topics(consumer, store, INTEGRATION, tenant_topics(tenant), limits)
        second_took = time.monotonic() - started
    assert sum(r.rows for r in first.values()) == produced
    assert sum(r.rows for r in second.values()) == 0
    assert first_took < limits.tail_idle_s / 2 and second_took < limits.tail_idle_s / 2


def test_a_run_ends_while_the_producer_goes_on_and_the_next_run_takes_the_rest(
    kafka_broker, kafka_connection, tenant, isolated_home
):
    produce_traffic(kafka_connection, tenant, generate_traffic(tenant, 100, seed=1))
    keep_producing = threading.Event()
    keep_producing.set()
    produced = [0]

    def producer() -> None:
        first = 200_000
        while keep_producing.is_set():
            summary = produce_traffic(kafka_connection, tenant, generate_traffic(tenant, 20, seed=2, first_customer_id=first))
            produced[0] += summary.total
            first += 20

    thread = threading.Thread(target=producer)
    thread.start()
    try:
        started = time.monotonic()
        drain(kafka_broker.bootstrap_servers, tenant, isolated_home)
        assert time.monotonic() - started < 60
    finally:
        keep_producing.clear()
        thread.join()
    drain(kafka_broker.bootstrap_servers, tenant, isolated_home)

    total = sum(1 for _ in generate_traffic(tenant, 100, seed=1)) + produced[0]
    raw = raw_messages(RawStore(raw_root(isolated_home)), INTEGRATION)
    assert raw.height == total
    assert raw.select("topic", "partition", "offset").is_unique().all()


def test_what_arrives_during_a_drain_is_left_to_the_next_and_counted_as_its_lag(
    kafka_broker, kafka_connection, tenant, isolated_home
):
    backlog = list(generate_traffic(tenant, 20, seed=7))
    produce_traffic(kafka_connection, tenant, backlog)
    late: list = []

    def produce_while_draining(read: int, of: int) -> None:
        if not late:
            time.sleep(0.01)  # dated after the run's start, to the millisecond
            late.extend(generate_traffic(tenant, 5, seed=8, first_customer_id=300_000))
            produce_traffic(kafka_connection, tenant, late)

    with KafkaResource().consumer(KafkaConnection(kafka_broker.bootstrap_servers), INTEGRATION) as consumer:
        results = drain_topics(
            consumer, RawStore(raw_root(isolated_home)), INTEGRATION, tenant_topics(tenant),
            on_progress=produce_while_draining,
        )
    # Newer than the run, past the ends it noted: not taken, and what it reports as
    # left. Tansu's end offset is its last record batch's first offset + 1, short
    # of the log end: the lag is at least one and at most all of them.
    assert sum(r.rows for r in results.values()) == len(backlog)
    assert 0 < sum(r.lag_after for r in results.values()) <= len(late)


def test_an_unreachable_broker_fails_the_run_with_a_message_naming_it(tenant, isolated_home):
    register(isolated_home, INTEGRATION, tenant, "127.0.0.1:9")
    started = time.monotonic()
    result = materialize_integration(isolated_home, INTEGRATION, [raw_topics], raise_on_error=False)
    assert time.monotonic() - started < 30
    assert not result.success
    assert "integration 'it', broker 127.0.0.1:9" in failure_text(result)
    assert "the broker was unreachable for 10s" in failure_text(result)
