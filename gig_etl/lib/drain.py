"""Draining Kafka topics into raw Parquet batches (no Dagster imports).

A drain notes each partition's high watermark first and reads up to it, so it
ends even while the producer goes on. It reads with `assign()` from the offsets
the raw store recorded, never from a consumer group: no group join, no rebalance,
and the offsets move only together with the batch that holds the messages.
A consumer with `enable.partition.eof` lets a drain end as soon as the broker
reports each partition's end; without it, a drain ends after an idle wait.
"""

from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Callable

import pyarrow as pa
import pyarrow.compute as pc
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from gig_etl.contract import TopicKind
from gig_etl.lib.raw_store import RAW_MESSAGE_SCHEMA, RawBatch, RawStore
from gig_etl.lib.shard import Shard


class DrainError(RuntimeError):
    """The drain cannot go on; the message names the topic and the cause."""


@dataclass(frozen=True)
class DrainLimits:
    # A batch is written when either bound is reached, and never holds more
    # messages than the first: memory stays flat however long the backlog, and a
    # run writes a few large files, not one per poll. They also bound the load,
    # whose chunks (load.CHUNK_MESSAGES) are whole batches.
    batch_max_messages: int = 50_000
    batch_max_bytes: int = 32 * 1024 * 1024
    # consume() waits to fill its count: kept small (2,000 and 5,000 drained 12 % and 25 % slower),
    # and never more than the offsets left to read, or the last poll waits out its timeout.
    consume_max_messages: int = 500
    consume_timeout_s: float = 1.0
    # With no progress for this long (broker gone, partition stuck) the drain fails.
    stall_timeout_s: float = 15.0
    # Past the noted ends, where the consumer reports no partition ends: how long
    # an empty poll means "nothing more"; and a cap on the tail either way.
    tail_idle_s: float = 0.2
    tail_max_s: float = 10.0
    metadata_timeout_s: float = 10.0

    def __post_init__(self) -> None:
        for name in ("batch_max_messages", "batch_max_bytes", "consume_max_messages"):
            if getattr(self, name) < 1:
                raise ValueError(f"the drain's {name} must be at least 1, not {getattr(self, name)}")


@dataclass(frozen=True)
class PartitionPlan:
    partition: int
    start_offset: int  # the first offset this run reads
    end_offset: int  # the high watermark noted when the run began: read up to, not including
    low_watermark: int

    @property
    def lag(self) -> int:
        return self.end_offset - self.start_offset


@dataclass(frozen=True)
class OffsetGap:
    """Offsets that were recorded as unread but are no longer on the broker."""

    partition: int
    from_offset: int
    to_offset: int  # exclusive


@dataclass
class DrainResult:
    topic: str
    topic_found: bool
    plans: list[PartitionPlan] = field(default_factory=list)
    batches: list[RawBatch] = field(default_factory=list)
    gaps: list[OffsetGap] = field(default_factory=list)
    # Messages left behind the drain once it ended (None: the broker did not say),
    # and the Kafka time of the newest message it read (ms since the epoch).
    lag_after: int | None = None
    newest_ms: int | None = None

    @property
    def rows(self) -> int:
        return sum(b.rows for b in self.batches)

    @property
    def bytes_written(self) -> int:
        return sum(b.bytes for b in self.batches)

    @property
    def lag_before(self) -> int:
        return sum(p.lag for p in self.plans)


def plan_partitions(
    recorded: dict[int, int], watermarks: dict[int, tuple[int, int]]
) -> tuple[list[PartitionPlan], list[OffsetGap]]:
    """Where to read each partition from and up to, given the recorded next offsets
    and the broker's (low, high) watermarks. A partition never read starts at its
    low watermark (a new partition is read from its start)."""
    plans, gaps = [], []
    for partition, (low, high) in sorted(watermarks.items()):
        start = recorded.get(partition, low)
        if start < low:  # retention deleted what we had not read yet
            gaps.append(OffsetGap(partition, start, low))
            start = low
        # start > high is possible: some brokers (Tansu) report as high watermark
        # the base offset of the last record batch + 1, short of the log's end.
        plans.append(PartitionPlan(partition, start, max(start, high), low))
    return plans, gaps


_MILLIS = itemgetter(1)  # Message.timestamp() is (type, milliseconds)
_FATAL_ERRORS = (KafkaError.OFFSET_OUT_OF_RANGE, KafkaError._AUTHENTICATION, KafkaError.TOPIC_AUTHORIZATION_FAILED)


def any_at_or_past_end(partitions: list[int], offsets: list[int], ends: dict[int, int]) -> bool:
    """Whether a message (partition, offset) is at or past its partition's noted
    end. Called for every poll: no per-message loop until the drain nears the ends."""
    last = max(offsets)
    if last < min(ends.values()):
        return False
    first = partitions[0]
    if partitions.count(first) == len(partitions):  # the usual case: a fetch is per partition
        return last >= ends[first]
    return any(offset >= ends[partition] for partition, offset in zip(partitions, offsets))


def _error_text(error: KafkaError) -> str:
    return f"{error.name()}: {error.str()}"


class _Batch:
    """Messages collected for one Parquet file, as Arrow record batches of a few
    thousand messages each: building arrays for every poll of 500 cost the drain
    more than the conversion itself (pyarrow's fixed cost per call), and keeping a
    whole file's messages as Python objects would cost ~50 MiB more."""

    CHUNK_MESSAGES = 5_000

    def __init__(self, topic: str) -> None:
        self.topic = topic
        self.chunks: list[pa.RecordBatch] = []
        self.rows = 0
        self.bytes = 0  # of the values
        self._pending: tuple[list, list, list, list, list] = ([], [], [], [], [])

    def add(self, partitions: list, offsets: list, timestamps_ms: list, keys: list, values: list) -> None:
        for column, new in zip(self._pending, (partitions, offsets, timestamps_ms, keys, values)):
            column += new
        self.rows += len(offsets)
        self.bytes += sum(map(len, filter(None, values)))
        if len(self._pending[1]) >= self.CHUNK_MESSAGES:
            self._convert_pending()

    def _convert_pending(self) -> None:
        partitions, offsets, timestamps_ms, keys, values = self._pending
        if not offsets:
            return
        millis = pa.array(timestamps_ms, pa.int64())
        # librdkafka reports -1 when a message has no timestamp.
        micros = pc.if_else(pc.less(millis, 0), pa.scalar(None, pa.int64()), pc.multiply(millis, 1000))
        self.chunks.append(
            pa.RecordBatch.from_arrays(
                [
                    pa.repeat(pa.scalar(self.topic, pa.string()), len(offsets)),
                    pa.array(partitions, pa.int32()),
                    pa.array(offsets, pa.int64()),
                    micros.cast(pa.timestamp("us", tz="UTC")),
                    pa.array(keys, pa.binary()),
                    pa.array(values, pa.binary()),
                ],
                schema=RAW_MESSAGE_SCHEMA,
            )
        )
        self._pending = ([], [], [], [], [])

    def table(self) -> pa.Table:
        self._convert_pending()
        return pa.Table.from_batches(self.chunks, schema=RAW_MESSAGE_SCHEMA)


def _plan_topic(
    consumer: Consumer, store: RawStore, integration: str, topic: str, limits: DrainLimits, shard: Shard | None = None
) -> DrainResult:
    """The topic's partitions (the `shard`'s), where each is read from and up to; a
    missing topic is no plan."""
    try:
        metadata = consumer.list_topics(topic=topic, timeout=limits.metadata_timeout_s)
    except KafkaException as exc:
        raise DrainError(f"cannot read metadata of {topic}: {_error_text(exc.args[0])}") from exc
    described = metadata.topics.get(topic)
    if described is None or described.error is not None or not described.partitions:
        return DrainResult(topic, topic_found=False)
    watermarks = {}
    for partition in sorted(p for p in described.partitions if shard is None or shard.owns(p)):
        try:
            watermarks[partition] = consumer.get_watermark_offsets(
                TopicPartition(topic, partition), timeout=limits.metadata_timeout_s, cached=False
            )
        except KafkaException as exc:
            raise DrainError(
                f"cannot read the end offsets of {topic} [{partition}]: {_error_text(exc.args[0])}"
            ) from exc
    plans, gaps = plan_partitions(store.next_offsets(integration, topic), watermarks)
    if gaps:
        store.record_gaps(integration, topic, [(g.partition, g.from_offset, g.to_offset) for g in gaps])
    return DrainResult(topic, topic_found=True, plans=plans, gaps=gaps)


class _TopicDrain:
    """One topic's progress within a drain: where each partition is, the batch being filled."""

    def __init__(self, kind: TopicKind, result: DrainResult) -> None:
        self.kind = kind
        self.result = result
        self.topic = result.topic
        self.ends = {p.partition: p.end_offset for p in result.plans}
        self.starts = {p.partition: p.start_offset for p in result.plans}
        self.next_offsets = dict(self.starts)
        self.stopped: set[int] = set()
        self.at_end: set[int] = set()  # the broker had nothing more when last fetched
        self.batch = _Batch(self.topic)

    def behind(self) -> list[int]:
        return [p for p, end in self.ends.items() if self.next_offsets[p] < end]

    def finished(self) -> bool:
        """Every partition stopped by a newer message or read to the broker's end."""
        return len(self.stopped | self.at_end) == len(self.ends)

    def reached_end(self, partition: int, next_offset: int) -> None:
        """librdkafka's partition EOF: every message before `next_offset` was delivered
        and the broker had none after. Tansu's high watermark can fall short of its
        log's end (see `plan_partitions`): this is the end a tail reads up to."""
        if partition in self.stopped or next_offset < self.ends[partition]:
            return
        # Past the last message, offsets can hold none (transaction markers).
        self.next_offsets[partition] = max(self.next_offsets[partition], next_offset)
        self.at_end.add(partition)

    def offsets_left(self) -> int:
        """From each partition's next offset up to its noted end: no fewer than the messages left."""
        return sum(max(0, end - self.next_offsets[p]) for p, end in self.ends.items())

    def take(self, messages: list, started_ms: int, consumer: Consumer) -> int:
        """Adds the messages that belong to this run; returns how many."""
        # map() over the C methods: the per-message work confluent-kafka forces, no more.
        partitions = list(map(Message.partition, messages))
        offsets = list(map(Message.offset, messages))
        timestamps = list(map(_MILLIS, map(Message.timestamp, messages)))
        if self.at_end:  # more arrived after an end was reported
            self.at_end.difference_update(partitions)
        if self.stopped or any_at_or_past_end(partitions, offsets, self.ends):
            keep = _past_end_filter(partitions, offsets, timestamps, self.ends, started_ms, self.stopped)
            if self.stopped:
                consumer.pause([TopicPartition(self.topic, p) for p in self.stopped])
            messages = [m for m, k in zip(messages, keep) if k]
            partitions = [p for p, k in zip(partitions, keep) if k]
            offsets = [o for o, k in zip(offsets, keep) if k]
            timestamps = [t for t, k in zip(timestamps, keep) if k]
        if messages:
            newest = max(timestamps)
            if self.result.newest_ms is None or newest > self.result.newest_ms:
                self.result.newest_ms = newest
            self.batch.add(
                partitions, offsets, timestamps, list(map(Message.key, messages)), list(map(Message.value, messages))
            )
            # Each partition's last offset in the poll (a partition's messages come in
            # order), from a dict, which keeps the last value of each key: no Python
            # loop per message.
            for partition, offset in dict(zip(partitions, offsets)).items():
                self.next_offsets[partition] = offset + 1
        return len(messages)

    def flush(self, writer: _BatchWriter) -> None:
        if self.batch.rows:
            advanced = {p: o for p, o in self.next_offsets.items() if o > self.starts[p]}
            writer.write(self.result, self.kind, self.batch.table(), advanced)
        self.batch = _Batch(self.topic)


class _BatchWriter:
    """Writes full batches on a thread per topic while the drain reads on: Parquet
    encoding and fsync (which release the GIL) overlap the reading. One write in
    flight per topic at most, waited for before that topic's next, so a topic's
    batches are recorded in order and memory holds one batch per topic being
    written besides those being filled. With one thread for both topics, a flush
    often waited for the other topic's write (0.25 s of a 1M drain)."""

    def __init__(self, store: RawStore, integration: str, shard: Shard | None = None) -> None:
        self.store = store
        self.integration = integration
        self.shard = shard
        self._executors: dict[str, ThreadPoolExecutor] = {}
        self._in_flight: dict[str, tuple[DrainResult, Future[RawBatch]]] = {}

    def write(self, result: DrainResult, kind: TopicKind, table: pa.Table, next_offsets: dict[int, int]) -> None:
        self._wait_for(result.topic)
        if result.topic not in self._executors:
            self._executors[result.topic] = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gig-etl-write")
        written = self._executors[result.topic].submit(
            self.store.commit_batch, self.integration, kind, result.topic, table, next_offsets, self.shard
        )
        self._in_flight[result.topic] = (result, written)

    def _wait_for(self, topic: str) -> None:
        """Until the topic's batch in flight is recorded; raises what its write raised."""
        if topic in self._in_flight:
            result, written = self._in_flight.pop(topic)
            result.batches.append(written.result())

    def wait(self) -> None:
        """Until every batch in flight is recorded."""
        for topic in list(self._in_flight):
            self._wait_for(topic)

    def close(self) -> None:
        """Lets writes in flight finish (a recorded batch is whole) without raising:
        the drain is ending on an error of its own."""
        for executor in self._executors.values():
            executor.shutdown(wait=True)


def drain_topics(
    consumer: Consumer,
    store: RawStore,
    integration: str,
    topics: dict[TopicKind, str],
    limits: DrainLimits = DrainLimits(),
    on_progress: Callable[[int, int], None] | None = None,
    shard: Shard | None = None,
) -> dict[TopicKind, DrainResult]:
    """Reads everything new in `topics`, all partitions at once (or the `shard`'s),
    up to the high watermarks noted at the start, writing bounded batches per topic
    to `store`. A missing or empty topic gives zero rows. `on_progress(read, of)`
    hears how many of the messages before the noted ends are read, for a progress bar."""
    started_ms = int(time.time() * 1000)
    results = {kind: _plan_topic(consumer, store, integration, topic, limits, shard) for kind, topic in topics.items()}
    drains = {r.topic: _TopicDrain(kind, r) for kind, r in results.items() if r.topic_found and r.plans}
    if not drains:
        return results
    # Messages past a noted end are still taken if their Kafka timestamp is not
    # after the run's start (see `plan_partitions`); a partition stops at its first
    # newer message, so a run ends while the producer goes on.
    consumer.assign(
        [TopicPartition(d.topic, p, start) for d in drains.values() for p, start in d.starts.items()]
    )
    writer = _BatchWriter(store, integration, shard)
    to_read = sum(d.offsets_left() for d in drains.values())
    try:
        last_progress = time.monotonic()
        tail_started: float | None = None
        last_error = "none"
        while True:
            behind = {topic: d.behind() for topic, d in drains.items()}
            behind = {topic: partitions for topic, partitions in behind.items() if partitions}
            if not behind:
                tail_started = tail_started or time.monotonic()
                if all(d.finished() for d in drains.values()) or time.monotonic() - tail_started > limits.tail_max_s:
                    break
            if behind:
                wanted = min(limits.consume_max_messages, sum(d.offsets_left() for d in drains.values()))
                messages = consumer.consume(wanted, timeout=limits.consume_timeout_s)
            else:
                # Past the ends, what the last fetches brought is queued already: take it at
                # once. Else wait for what comes next, a message or a partition's end, by
                # poll(), which returns with the first: consume() waits out its timeout
                # for the count it asked for.
                messages = consumer.consume(limits.consume_max_messages, timeout=0)
                if not messages:
                    following = consumer.poll(limits.tail_idle_s)
                    messages = [following] if following is not None else []
            by_topic, ends_reached, transient = _by_topic(messages, drains)
            last_error = transient or last_error
            taken = 0
            for topic, topic_messages in by_topic.items():
                drain = drains[topic]
                # A poll is split where the batch is full: a batch holds at most
                # batch_max_messages, so the load's chunks fit whole batches.
                while topic_messages:
                    room = limits.batch_max_messages - drain.batch.rows
                    taken += drain.take(topic_messages[:room], started_ms, consumer)
                    topic_messages = topic_messages[room:]
                    if drain.batch.rows >= limits.batch_max_messages or drain.batch.bytes >= limits.batch_max_bytes:
                        drain.flush(writer)
            for topic, partition, next_offset in ends_reached:
                drains[topic].reached_end(partition, next_offset)
            if taken:
                last_progress = time.monotonic()
                if on_progress is not None:
                    on_progress(to_read - sum(d.offsets_left() for d in drains.values()), to_read)
                continue
            if messages:
                continue
            if not behind:
                break  # the tail is idle: everything appended before the run is read
            # A partition can end in offsets that hold no message (transaction
            # markers): its position passes the end with nothing delivered.
            for topic, partitions in behind.items():
                drain = drains[topic]
                for position in consumer.position([TopicPartition(topic, p) for p in partitions]):
                    if position.offset >= drain.ends[position.partition]:
                        drain.next_offsets[position.partition] = position.offset
            if time.monotonic() - last_progress > limits.stall_timeout_s:
                stuck = "; ".join(f"{topic} {partitions}" for topic, partitions in behind.items())
                try:  # librdkafka retries quietly: ask the broker once, for a cause to report
                    consumer.list_topics(timeout=2.0)
                except KafkaException as exc:
                    last_error = _error_text(exc.args[0])
                raise DrainError(
                    f"no progress reading {stuck} for {limits.stall_timeout_s:.0f}s; last broker error: {last_error}"
                )
        # Fetching stops before the end offsets are asked for: a query waits behind
        # the fetch in flight, which waits at a partition's end for more to come.
        consumer.unassign()
        for drain in drains.values():
            drain.flush(writer)
        writer.wait()
        for drain in drains.values():
            drain.result.lag_after = _lag_after(consumer, drain, limits)
    finally:
        writer.close()
        consumer.unassign()
    return results


def _lag_after(consumer: Consumer, drain: _TopicDrain, limits: DrainLimits) -> int | None:
    """What the topic's partitions hold past where the drain ended: a figure to
    show, so a broker that does not answer leaves it unknown rather than fail."""
    lag = 0
    for partition, reached in drain.next_offsets.items():
        try:
            _low, high = consumer.get_watermark_offsets(
                TopicPartition(drain.topic, partition), timeout=limits.metadata_timeout_s, cached=False
            )
        except KafkaException:
            return None
        lag += max(0, high - reached)
    return lag


def _by_topic(
    messages: list[Message], drains: dict
) -> tuple[dict[str, list[Message]], list[tuple[str, int, int]], str | None]:
    """The messages of each topic, errors aside; the partition ends reported (topic,
    partition, next offset); raises on a fatal error, else returns the last transient
    one (broker down, leader moving: librdkafka retries)."""
    transient = None
    ends_reached = []
    if any(map(Message.error, messages)):
        kept = []
        for message in messages:
            error = message.error()
            if error is None:
                kept.append(message)
            elif error.code() == KafkaError._PARTITION_EOF:
                ends_reached.append((message.topic(), message.partition(), message.offset()))
            elif error.fatal() or error.code() in _FATAL_ERRORS:
                raise DrainError(f"reading {message.topic() or ', '.join(drains)}: {_error_text(error)}")
            else:
                transient = _error_text(error)
        messages = kept
    topics = list(map(Message.topic, messages))
    if topics and topics.count(topics[0]) == len(topics):  # the usual case: a fetch is per partition
        return {topics[0]: messages}, ends_reached, transient
    by_topic: dict[str, list[Message]] = {}
    for message, topic in zip(messages, topics):
        by_topic.setdefault(topic, []).append(message)
    return by_topic, ends_reached, transient


def _past_end_filter(
    partitions: list[int],
    offsets: list[int],
    timestamps: list[int],
    ends: dict[int, int],
    started_ms: int,
    stopped: set[int],
) -> list[bool]:
    """Which messages to keep when some are at or past their partition's noted end:
    those before the end, and after it those appended before the run started, up to
    the first newer one, which stops the partition (added to `stopped`)."""
    keep = []
    for partition, offset, timestamp in zip(partitions, offsets, timestamps):
        if partition in stopped:
            keep.append(False)
        elif offset < ends[partition] or 0 <= timestamp <= started_ms:
            keep.append(True)
        else:
            stopped.add(partition)
            keep.append(False)
    return keep


def redrain_unreadable(
    consumer: Consumer, store: RawStore, integration: str, limits: DrainLimits = DrainLimits(),
    shard: Shard | None = None,
) -> dict[str, RawBatch]:
    """Reads again from Kafka, by their recorded offsets, the batches whose files
    could not be read, each into a new batch in its place (`RawStore.replace_batch`);
    returns the new batch of each old one. A batch whose offsets the broker no
    longer holds is set aside, on record with the reason, and the others go on.
    A shard reads again only batches all of whose partitions are its own: another
    shard may be reading the others' now (an unsharded drain reads them all)."""
    replaced = {}
    for record in store.unreadable(integration):
        ranges = store.batch_ranges(record.batch.batch_id)
        if record.set_aside or (shard is not None and not all(shard.owns(p) for p in ranges)):
            continue
        table, missing = _read_offsets(consumer, record.batch.topic, ranges, limits)
        if missing is not None:
            store.set_aside(record.batch.batch_id, f"{record.reason}; it cannot be drained again: {missing}")
        else:
            replaced[record.batch.batch_id] = store.replace_batch(record.batch, table)
    return replaced


def _read_offsets(
    consumer: Consumer, topic: str, ranges: dict[int, tuple[int, int]], limits: DrainLimits
) -> tuple[pa.Table, str | None]:
    """The messages of `topic` at the offsets `ranges` (partition: first, last), and
    None; or what the broker no longer has of them."""
    for partition, (first, _) in sorted(ranges.items()):
        try:
            low, _high = consumer.get_watermark_offsets(
                TopicPartition(topic, partition), timeout=limits.metadata_timeout_s, cached=False
            )
        except KafkaException as exc:
            raise DrainError(f"cannot read the offsets of {topic} [{partition}]: {_error_text(exc.args[0])}") from exc
        if first < low:
            return pa.table({}), f"the broker's earliest offset of {topic} [{partition}] is {low}, past {first}"
    batch = _Batch(topic)
    pending = dict(ranges)
    consumer.assign([TopicPartition(topic, p, first) for p, (first, _) in sorted(ranges.items())])
    try:
        last_progress = time.monotonic()
        while pending:
            messages = consumer.consume(limits.consume_max_messages, timeout=limits.consume_timeout_s)
            kept = []
            for message in messages:
                error = message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF and message.partition() in pending:
                        return pa.table({}), (
                            f"{topic} [{message.partition()}] ends at offset {message.offset()}, "
                            f"before {pending[message.partition()][1]}"
                        )
                    if error.code() == KafkaError.OFFSET_OUT_OF_RANGE:
                        return pa.table({}), f"the broker does not hold those offsets of {topic}: {_error_text(error)}"
                    if error.fatal() or error.code() in _FATAL_ERRORS:
                        raise DrainError(f"reading {topic}: {_error_text(error)}")
                    continue
                span = pending.get(message.partition())
                if span is None:
                    continue
                if span[0] <= message.offset() <= span[1]:
                    kept.append(message)
                if message.offset() >= span[1]:
                    del pending[message.partition()]
            if kept:
                last_progress = time.monotonic()
                batch.add(
                    list(map(Message.partition, kept)), list(map(Message.offset, kept)),
                    list(map(_MILLIS, map(Message.timestamp, kept))), list(map(Message.key, kept)),
                    list(map(Message.value, kept)),
                )
            elif time.monotonic() - last_progress > limits.stall_timeout_s:
                try:  # a broker that answers but delivers nothing there does not hold those offsets
                    consumer.list_topics(topic=topic, timeout=2.0)
                except KafkaException as exc:
                    raise DrainError(
                        f"no progress reading {topic} {sorted(pending)} again for {limits.stall_timeout_s:.0f}s: "
                        f"{_error_text(exc.args[0])}"
                    ) from exc
                return pa.table({}), (
                    f"the broker delivered nothing of {topic} at offsets "
                    + ", ".join(f"[{p}] {first}..{last}" for p, (first, last) in sorted(pending.items()))
                    + f" in {limits.stall_timeout_s:.0f}s"
                )
    finally:
        consumer.unassign()
    return batch.table(), None
