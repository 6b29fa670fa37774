"""What Kafka can do to a drain: topics that appear late, partitions never seen,
offsets deleted before they were read, messages over 1 MiB, keys that are not UTF-8."""

from datetime import UTC, datetime


from gig_etl.contract import TopicKind
from gig_etl.defs.raw.assets import raw_topics
from gig_etl.defs.resources import KafkaResource
from gig_etl.lib.drain import PartitionPlan, drain_topics, plan_partitions
from gig_etl.lib.home import raw_root
from gig_etl.lib.kafka import KafkaConnection
from gig_etl.lib.raw_store import RawStore
from gig_etl.lib.warehouse import embedded_lake, open_lake
from gig_etl.simulate import envelope, generate_traffic, message, produce_traffic
from gig_etl_tests.pipeline import asset_metadata, materialize_integration, register
from gig_etl_tests.raw_helpers import raw_messages

NOW = datetime.now(UTC)


def test_a_topic_created_after_the_integration_is_read_from_its_start(kafka_broker, tenant, isolated_home):
    register(isolated_home, "late", tenant, kafka_broker.bootstrap_servers)
    first = asset_metadata(materialize_integration(isolated_home, "late", [raw_topics]))
    assert first["events"]["topic_found"] == "False"

    produced = produce_traffic(KafkaConnection(kafka_broker.bootstrap_servers), tenant, generate_traffic(tenant, 30))
    second = asset_metadata(materialize_integration(isolated_home, "late", [raw_topics]))
    assert second["profiles"]["rows"] + second["events"]["rows"] == produced.total
    assert raw_messages(RawStore(raw_root(isolated_home)), "late")["offset"].min() == 0


def test_a_partition_never_read_before_is_read_from_its_start():
    # Partitions added while a drain reads are not in its plan; the next drain
    # finds them with no recorded offset and starts at their earliest one.
    plans, gaps = plan_partitions({0: 40, 1: 12}, {0: (0, 50), 1: (0, 12), 2: (0, 9)})
    assert plans[2] == PartitionPlan(2, 0, 9, 0)
    assert gaps == []


class RetentionPassed:
    """A real consumer whose broker reports that partition 0 starts at `earliest`,
    as after retention deleted what was before (Tansu cannot delete records)."""

    def __init__(self, consumer, earliest: int) -> None:
        self._consumer, self._earliest = consumer, earliest

    def get_watermark_offsets(self, partition, **kwargs):
        low, high = self._consumer.get_watermark_offsets(partition, **kwargs)
        return (self._earliest, high) if partition.partition == 0 else (low, high)

    def __getattr__(self, name):
        return getattr(self._consumer, name)


def test_offsets_deleted_before_they_were_read_are_recorded_as_a_gap_and_reading_goes_on(
    kafka_broker, tenant, isolated_home
):
    connection = KafkaConnection(kafka_broker.bootstrap_servers)
    store = RawStore(raw_root(isolated_home))
    topic = TopicKind.EVENTS.topic(tenant)
    events = {TopicKind.EVENTS: topic}
    produce_traffic(connection, tenant, generate_traffic(tenant, 40, seed=8))
    with KafkaResource().consumer(connection, "gappy") as consumer:
        drain_topics(consumer, store, "gappy", events)
        recorded = store.next_offsets("gappy", topic)[0]
        # More arrives, and retention deletes the first ten of it before the next drain.
        produce_traffic(connection, tenant, generate_traffic(tenant, 40, seed=9, first_customer_id=700_000))
        [result] = drain_topics(RetentionPassed(consumer, recorded + 10), store, "gappy", events).values()
        [again] = drain_topics(RetentionPassed(consumer, recorded + 10), store, "gappy", events).values()

    assert [(g.partition, g.from_offset, g.to_offset) for g in result.gaps] == [(0, recorded, recorded + 10)]
    assert store.gaps("gappy") == [(topic, 0, recorded, recorded + 10)]
    offsets = set(raw_messages(store, "gappy").filter(partition=0)["offset"])
    assert offsets.isdisjoint(range(recorded, recorded + 10))
    assert {recorded - 1, recorded + 10} <= offsets  # reading went on after the gap
    assert again.gaps == [] and again.rows == 0  # reported once


def test_a_message_over_1_mib_is_loaded_and_a_key_that_is_not_utf8_is_kept(kafka_broker, tenant, isolated_home):
    notes = "ü" * 800_000  # 1.6 MB of UTF-8
    profile = envelope(tenant, "900001", "profile", NOW, {"first_name": "Big", "notes": notes})
    odd_key = envelope(tenant, "900002", "profile", NOW, {"first_name": "Odd"})
    produce_traffic(
        KafkaConnection(kafka_broker.bootstrap_servers), tenant,
        [
            message(TopicKind.PROFILES, "900001", profile),
            message(TopicKind.PROFILES, b"\xff\xfe900002", odd_key),
            message(TopicKind.PROFILES, b"\xff\xfe", None),  # a tombstone no customer id can be read from
        ],
    )
    register(isolated_home, "edges", tenant, kafka_broker.bootstrap_servers)
    assert materialize_integration(isolated_home, "edges").success

    raw = raw_messages(RawStore(raw_root(isolated_home)), "edges")
    assert sorted(raw["key"].to_list()) == sorted([b"900001", b"\xff\xfe900002", b"\xff\xfe"])
    assert max(len(v or b"") for v in raw["value"]) > 1_048_576
    with open_lake(embedded_lake(isolated_home), read_only=True) as db:
        assert db.execute(
            "SELECT customer_id, gig_first_name, length(gig_notes) FROM profiles WHERE integration = 'edges' ORDER BY 1"
        ).fetchall() == [("900001", "Big", 800_000)]
        # Keyed by no customer id it names: kept byte for byte in quarantine, not loaded.
        assert db.execute("SELECT key, reason FROM quarantine WHERE integration = 'edges' ORDER BY 1").fetchall() == [
            (b"\xff\xfe", "tombstone key is not a UTF-8 customer id"),
            (b"\xff\xfe900002", "customer_id differs from the message key"),
        ]


def test_gig_etl_run_prints_a_gap_as_a_warning():
    from gig_etl.tick import RunOutcome, outcome_lines

    drained = {"rows": 3, "topic": "gig.acme.events", "files": 1, "bytes_written": 10,
               "gaps": [{"partition": 0, "from": 5, "to": 15}]}
    lines = outcome_lines(RunOutcome("it", "r1", True, None, {"raw/events": drained}))
    assert "  warning: gig.acme.events [0] offsets 5..14 were deleted by the broker before they were read" in "\n".join(lines)
