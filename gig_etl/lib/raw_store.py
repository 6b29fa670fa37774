"""Raw Parquet micro-batches and their manifest (no Dagster imports).

A batch is a Parquet file of Kafka messages kept byte for byte, in a local
folder or under an S3 prefix. The manifest, a SQLite file beside the batches or
tables in a team's Postgres, is the source of truth: a batch exists once its row
is in `raw_batches`, and the offsets to read next live in `raw_offsets`, both
written in one transaction after the file is published whole. A file with no
row (a crash between the two) is an orphan that counts for nothing and is
removed. Either database lets the CLI, the sensor and the UI read the manifest
while a run writes it.
"""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Callable

import pyarrow as pa
import pyarrow.compute as pc

from gig_etl.contract import TopicKind
from gig_etl.lib.file_area import FileArea
from gig_etl.lib.home import writing_under
from gig_etl.lib.shard import Shard
from gig_etl.lib.state_db import StateConnection, StateDatabase

# One row per Kafka message, kept untouched. Timestamps are microseconds in UTC
# because nanosecond Parquet timestamps are not read by every reader.
RAW_MESSAGE_SCHEMA = pa.schema(
    [
        pa.field("topic", pa.string(), nullable=False),
        pa.field("partition", pa.int32(), nullable=False),
        pa.field("offset", pa.int64(), nullable=False),
        pa.field("timestamp", pa.timestamp("us", tz="UTC")),
        pa.field("key", pa.binary()),
        pa.field("value", pa.binary()),  # null: a tombstone
    ]
)

_MANIFEST_DDL = """
CREATE TABLE IF NOT EXISTS raw_batches (
    batch_id     TEXT PRIMARY KEY,
    integration  TEXT NOT NULL,
    topic_kind   TEXT NOT NULL,
    topic        TEXT NOT NULL,
    path         TEXT NOT NULL UNIQUE,  -- relative to the raw root
    rows         BIGINT NOT NULL,
    bytes        BIGINT NOT NULL,
    created_at   TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS raw_batches_by_source ON raw_batches (integration, topic_kind);
CREATE TABLE IF NOT EXISTS raw_batch_ranges (
    batch_id     TEXT NOT NULL REFERENCES raw_batches (batch_id),
    partition    INTEGER NOT NULL,
    first_offset BIGINT NOT NULL,
    last_offset  BIGINT NOT NULL,
    PRIMARY KEY (batch_id, partition)
);
CREATE TABLE IF NOT EXISTS drain_history (
    integration  TEXT NOT NULL,
    topic        TEXT NOT NULL,
    lag_before   BIGINT NOT NULL,    -- messages behind when the drain began
    drained      BIGINT NOT NULL,
    finished_at  TEXT NOT NULL
);
-- Offsets recorded as unread that the broker no longer had (retention passed them):
-- lost to us, reported here and in the run, never silently skipped.
CREATE TABLE IF NOT EXISTS gaps (
    integration  TEXT NOT NULL,
    topic        TEXT NOT NULL,
    partition    INTEGER NOT NULL,
    from_offset  BIGINT NOT NULL,
    to_offset    BIGINT NOT NULL,   -- exclusive: the broker's earliest offset then
    found_at     TEXT NOT NULL,
    PRIMARY KEY (integration, topic, partition, from_offset)
);
-- Recorded batches whose file could not be read (gone, truncated, not Parquet).
-- set_aside = 0: the next drain reads its offsets again from Kafka into a new
-- batch; 1: the broker no longer had them, and the batch is skipped, on record.
CREATE TABLE IF NOT EXISTS unreadable_batches (
    batch_id     TEXT PRIMARY KEY,
    reason       TEXT NOT NULL,
    found_at     TEXT NOT NULL,
    set_aside    INTEGER NOT NULL
);
-- Customers erased by a tombstone (which raw keeps too, so that a rebuild erases
-- again). Here, not in the warehouse: the warehouse keeps nothing of an erased
-- customer, their id included. raw_erased = 1: every batch rewritten without them.
CREATE TABLE IF NOT EXISTS erasures (
    integration  TEXT NOT NULL,
    customer_id  TEXT NOT NULL,
    erased_at    TEXT NOT NULL,      -- Kafka time of the newest tombstone
    raw_erased   INTEGER NOT NULL,
    PRIMARY KEY (integration, customer_id)
);
CREATE TABLE IF NOT EXISTS raw_offsets (
    integration  TEXT NOT NULL,
    topic        TEXT NOT NULL,
    partition    INTEGER NOT NULL,
    next_offset  BIGINT NOT NULL,
    updated_at   TEXT NOT NULL,
    PRIMARY KEY (integration, topic, partition)
);
"""


@dataclass(frozen=True)
class RawBatch:
    batch_id: str
    integration: str
    topic_kind: str
    topic: str
    path: str  # the file's location in its area: an absolute path, or bucket/key on S3
    rows: int
    bytes: int
    created_at: str
    area: FileArea = field(compare=False, repr=False)  # where `path` is: a local folder, or S3

    def where(self) -> str:
        return self.area.display(self.path)


@dataclass(frozen=True)
class UnreadableRecord:
    batch: RawBatch
    reason: str
    set_aside: bool


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


class UnreadableBatch(RuntimeError):
    """A raw batch's file is missing, truncated or not a raw batch; says which and why."""


def read_raw_batch(batch: RawBatch, columns: list[str] | None = None) -> pa.Table:
    """The batch's messages (or those columns of them); raises UnreadableBatch when
    its file cannot give them."""
    try:
        table = batch.area.read_parquet(batch.path, columns=columns)
        found = [(f.name, f.type) for f in table.schema]
    # Gone, truncated, not Parquet, or metadata that is not even UTF-8 (ValueError).
    except (OSError, ValueError, pa.ArrowException) as exc:
        raise UnreadableBatch(f"raw batch {batch.batch_id} ({batch.where()}) cannot be read: {exc}") from exc
    expected = [(f.name, f.type) for f in RAW_MESSAGE_SCHEMA if columns is None or f.name in columns]
    if found != expected:
        raise UnreadableBatch(
            f"raw batch {batch.batch_id} ({batch.where()}) does not hold raw messages: columns {table.schema.names}"
        )
    return table


def _position(table: pa.Table) -> pa.Array:
    """Each message's (partition, offset) as one integer, to look up at once."""
    return pc.add(pc.shift_left(pc.cast(table["partition"], pa.int64()), 40), table["offset"])


def _listed(table: pa.Table, keys: pa.Array, positions: pa.Array) -> pa.Array:
    return pc.or_(pc.is_in(table["key"], value_set=keys), pc.is_in(_position(table), value_set=positions))


def _rewrite_without(keys: pa.Array, positions: pa.Array, batch: RawBatch) -> tuple[int, int] | None:
    """Rewrites `batch` without the messages whose key is one of `keys` or whose
    position is one of `positions`, tombstones aside; returns its rows and size
    then, or None if it held none of them."""
    # Keys and positions alone first: a batch without any of them is not read whole.
    if not pc.any(_listed(read_raw_batch(batch, ["partition", "offset", "key"]), keys, positions)).as_py():
        return None
    table = read_raw_batch(batch)
    erased = pc.and_(_listed(table, keys, positions), pc.is_valid(table["value"]))
    if not pc.any(erased).as_py():
        return None
    kept = table.filter(pc.invert(erased))
    return kept.num_rows, batch.area.write_parquet(kept, batch.path)


class RawStore:
    """The raw layer: files `<integration>/<topic kind>/date=<day>/<batch>.parquet`
    in `files`, recorded in the manifest `state`. By default both are under the
    local folder `root`."""

    def __init__(self, root: Path | None = None, state: StateDatabase | None = None, files: FileArea | None = None) -> None:
        if files is None:
            assert root is not None, "a raw store needs a local root or a file area"
            files = FileArea.local(root)
        self.files = files
        self.state = state or StateDatabase("the raw manifest", sqlite_path=Path(files.base) / "manifest.sqlite")
        with self._writing("the raw manifest"):
            files.prepare()
        self.state.create(_MANIFEST_DDL)

    def describe(self) -> str:
        return self.files.display()

    def _insert_batch(self, db: StateConnection, batch: RawBatch, table: pa.Table) -> None:
        """The manifest rows of a batch: itself, and the offsets it holds per partition."""
        db.execute(
            "INSERT INTO raw_batches VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (batch.batch_id, batch.integration, batch.topic_kind, batch.topic, self.files.relative(batch.path),
             batch.rows, batch.bytes, batch.created_at),
        )
        ranges = table.group_by("partition").aggregate([("offset", "min"), ("offset", "max")]).to_pylist()
        db.executemany(
            "INSERT INTO raw_batch_ranges VALUES (?, ?, ?, ?)",
            [(batch.batch_id, r["partition"], r["offset_min"], r["offset_max"]) for r in ranges],
        )

    # -- offsets ----------------------------------------------------------------

    @staticmethod
    def _record_next_offsets(
        db: StateConnection, integration: str, topic: str, next_offsets: dict[int, int], at: str
    ) -> None:
        db.executemany(
            "INSERT INTO raw_offsets VALUES (?, ?, ?, ?, ?) ON CONFLICT (integration, topic, partition) "
            "DO UPDATE SET next_offset = excluded.next_offset, updated_at = excluded.updated_at",
            [(integration, topic, p, o, at) for p, o in sorted(next_offsets.items())],
        )

    def next_offsets(self, integration: str, topic: str) -> dict[int, int]:
        """The recorded next offset to read, per partition, for this integration's topic."""
        with self.state.connect() as db:
            rows = db.execute(
                "SELECT partition, next_offset FROM raw_offsets WHERE integration = ? AND topic = ?",
                (integration, topic),
            ).fetchall()
        return dict(rows)

    def record_gaps(self, integration: str, topic: str, gaps: list[tuple[int, int, int]]) -> None:
        """Records (partition, from, to) gaps and moves those partitions' next offsets
        past them, in one transaction: a gap is reported once, and reading goes on
        from the broker's earliest offset."""
        found_at = _now()
        with self.state.transaction() as db:
            db.executemany(
                "INSERT INTO gaps VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                [(integration, topic, p, start, end, found_at) for p, start, end in gaps],
            )
            # A gap is found only below the broker's earliest offset: this moves forward.
            self._record_next_offsets(db, integration, topic, {p: end for p, _, end in gaps}, found_at)

    def gaps(self, integration: str) -> list[tuple[str, int, int, int]]:
        """(topic, partition, from, to) of every gap recorded for the integration."""
        with self.state.connect() as db:
            return db.execute(
                "SELECT topic, partition, from_offset, to_offset FROM gaps WHERE integration = ? "
                "ORDER BY topic, partition, from_offset",
                (integration,),
            ).fetchall()

    def record_drain(self, integration: str, topic: str, lag_before: int, drained: int) -> None:
        with self.state.connect() as db:
            db.execute(
                "INSERT INTO drain_history VALUES (?, ?, ?, ?, ?)", (integration, topic, lag_before, drained, _now())
            )

    def recent_lags(self, integration: str, topic: str, runs: int = 3) -> list[int]:
        """Lag before each of the latest `runs` drains, oldest first."""
        with self.state.connect() as db:
            rows = db.execute(
                "SELECT lag_before FROM drain_history WHERE integration = ? AND topic = ? "
                "ORDER BY finished_at DESC LIMIT ?",
                (integration, topic, runs),
            ).fetchall()
        return [lag for (lag,) in reversed(rows)]

    # -- batches ----------------------------------------------------------------

    def commit_batch(
        self,
        integration: str,
        topic_kind: TopicKind,
        topic: str,
        table: pa.Table,
        next_offsets: dict[int, int],
        shard: Shard | None = None,
    ) -> RawBatch:
        """Writes `table` as a durable Parquet file, then records it and the offsets
        after it in one manifest transaction. A crash before the transaction leaves
        an orphan file that `remove_orphans` deletes; never a recorded gap. A
        shard's batch is named for it, so that only that shard removes its orphans."""
        created_at = _now()
        batch_id = f"{created_at[:19].replace(':', '').replace('-', '')}-{uuid.uuid4().hex[:12]}"
        if shard is not None:
            batch_id += f"-{shard.name}"
        final = self.files.location(f"{integration}/{topic_kind.value}/date={created_at[:10]}/{batch_id}.parquet")
        # Disk full or unwritable: the run stops with nothing recorded, and what
        # was half written is an orphan the next run removes.
        with self._writing("a raw batch"):
            size = self.files.write_parquet(table, final)
            batch = RawBatch(batch_id, integration, topic_kind.value, topic, final, table.num_rows, size, created_at, self.files)
            with self.state.transaction() as db:
                self._insert_batch(db, batch, table)
                self._record_next_offsets(db, integration, topic, next_offsets, created_at)
        return batch

    def batches(self, integration: str | None = None, topic_kind: TopicKind | None = None) -> list[RawBatch]:
        query = (
            "SELECT batch_id, integration, topic_kind, topic, path, rows, bytes, created_at FROM raw_batches "
            "WHERE (? IS NULL OR integration = ?) AND (? IS NULL OR topic_kind = ?) ORDER BY created_at, batch_id"
        )
        kind = topic_kind and topic_kind.value
        with self.state.connect() as db:
            rows = db.execute(query, (integration, integration, kind, kind)).fetchall()
        return [
            RawBatch(b, i, k, t, self.files.location(p), n, size, c, self.files) for b, i, k, t, p, n, size, c in rows
        ]

    def erase_customers(
        self, integration: str, customers: set[str], positions: pa.Table, batch_ids: set[str] | None = None
    ) -> int:
        """Rewrites the integration's batches (or those named) without the messages
        keyed by one of `customers` or at one of `positions` (topic, partition,
        offset), tombstones aside; returns the files rewritten. Used for erasure:
        what the warehouse erased goes from raw too. A batch whose file cannot be
        read is recorded as unreadable, and the others go on."""
        if not customers and not positions.num_rows:
            return 0
        keys = pa.array(sorted(c.encode() for c in customers), pa.binary())
        at = {
            topic: _position(positions.filter(pc.equal(positions["topic"], topic)))
            for topic in pc.unique(positions["topic"]).to_pylist()
        }
        batches = [b for b in self.batches(integration) if batch_ids is None or b.batch_id in batch_ids]
        rewritten = 0

        def rewrite(batch: RawBatch) -> tuple[int, int] | str | None:
            try:
                return _rewrite_without(keys, at.get(batch.topic, pa.array([], pa.int64())), batch)
            except UnreadableBatch as exc:
                return str(exc)

        # Reading, filtering and writing Parquet release the GIL: two files at a
        # time took the 20 rewrites of a 1M backlog from 2.0–2.5 to 1.1–1.3 s.
        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="gig-etl-erase") as pool:
            for batch, result in zip(batches, pool.map(rewrite, batches)):
                if isinstance(result, str):
                    self.record_unreadable(batch.batch_id, result)
                elif result is not None:
                    rows, size = result
                    with self.state.connect() as db:
                        db.execute(
                            "UPDATE raw_batches SET rows = ?, bytes = ? WHERE batch_id = ?", (rows, size, batch.batch_id)
                        )
                    rewritten += 1
        return rewritten

    # -- batches that cannot be read --------------------------------------------

    def record_unreadable(self, batch_id: str, reason: str) -> None:
        """Notes a batch whose file cannot be read, for the next drain to read again
        from Kafka (`replace_batch`) or to set aside."""
        with self.state.connect() as db:
            db.execute(
                "INSERT INTO unreadable_batches VALUES (?, ?, ?, 0) ON CONFLICT (batch_id) DO NOTHING",
                (batch_id, reason, _now()),
            )

    def set_aside(self, batch_id: str, reason: str) -> None:
        """A batch that cannot be read nor drained again: kept on record, with why."""
        with self.state.connect() as db:
            db.execute(
                "INSERT INTO unreadable_batches VALUES (?, ?, ?, 1) ON CONFLICT (batch_id) "
                "DO UPDATE SET reason = excluded.reason, set_aside = 1",
                (batch_id, reason, _now()),
            )

    def readable_again(self, batch_id: str) -> None:
        with self.state.connect() as db:
            db.execute("DELETE FROM unreadable_batches WHERE batch_id = ?", (batch_id,))

    def unreadable(self, integration: str) -> list[UnreadableRecord]:
        """The integration's batches on record as unreadable, set aside or not."""
        with self.state.connect() as db:
            rows = db.execute(
                "SELECT u.batch_id, u.reason, u.set_aside FROM unreadable_batches AS u "
                "JOIN raw_batches AS b USING (batch_id) WHERE b.integration = ? ORDER BY b.created_at, u.batch_id",
                (integration,),
            ).fetchall()
        batches = {b.batch_id: b for b in self.batches(integration)}
        return [UnreadableRecord(batches[b], reason, bool(aside)) for b, reason, aside in rows]

    def batch_ranges(self, batch_id: str) -> dict[int, tuple[int, int]]:
        """The offsets a batch holds, per partition: (first, last), both included."""
        with self.state.connect() as db:
            rows = db.execute(
                "SELECT partition, first_offset, last_offset FROM raw_batch_ranges WHERE batch_id = ?", (batch_id,)
            ).fetchall()
        return {p: (first, last) for p, first, last in rows}

    def replace_batch(self, old: RawBatch, table: pa.Table) -> RawBatch:
        """Puts `table`, the messages of the unreadable `old` read again from Kafka, in
        its place: a new batch (so a warehouse that loaded the old one counts them as
        duplicates), recorded in one transaction that also drops the old one."""
        batch_id = f"{old.batch_id}-redrained-{uuid.uuid4().hex[:8]}"
        path = f"{old.path.rsplit('/', 1)[0]}/{batch_id}.parquet"
        with self._writing("a raw batch"):
            size = self.files.write_parquet(table, path)
            new = RawBatch(batch_id, old.integration, old.topic_kind, old.topic, path, table.num_rows, size, old.created_at, self.files)
            with self.state.transaction() as db:
                self._insert_batch(db, new, table)
                db.execute("DELETE FROM raw_batch_ranges WHERE batch_id = ?", (old.batch_id,))
                db.execute("DELETE FROM raw_batches WHERE batch_id = ?", (old.batch_id,))
                db.execute("DELETE FROM unreadable_batches WHERE batch_id = ?", (old.batch_id,))
        self.files.delete(old.path)
        return new

    def compaction_candidates(self, integration: str, before_day: str) -> dict[str, list[RawBatch]]:
        """The integration's days before `before_day` (YYYY-MM-DD) with more than one
        file per topic kind, and their batches."""
        days: dict[str, list[RawBatch]] = {}
        unreadable_days = {r.batch.created_at[:10] for r in self.unreadable(integration)}
        for batch in self.batches(integration):
            day = batch.created_at[:10]
            if day < before_day and day not in unreadable_days:  # not before its batches read again
                days.setdefault(day, []).append(batch)
        return {
            day: batches for day, batches in days.items()
            if any(sum(b.topic_kind == kind for b in batches) > 1 for kind in {b.topic_kind for b in batches})
        }

    def compact(self, batches: list[RawBatch], record_loaded: Callable[[list[RawBatch]], None]) -> list[RawBatch]:
        """Merges `batches` (one integration's, one day's) into one file per topic and
        partition with the same messages, and swaps them in the manifest in one
        transaction. `record_loaded` is told of the new batches first, so a warehouse
        that loaded the old batches does not load the new ones again."""
        if not batches:
            return []
        integration, day = batches[0].integration, batches[0].created_at[:10]
        merged = pa.concat_tables([self.files.read_parquet(b.path) for b in batches]).sort_by(
            [("topic", "ascending"), ("partition", "ascending"), ("offset", "ascending")]
        )
        topic_kinds = {b.topic: b.topic_kind for b in batches}
        created_at = max(b.created_at for b in batches)
        new: list[tuple[RawBatch, pa.Table]] = []
        for topic in sorted(topic_kinds):
            topic_rows = merged.filter(pc.equal(merged["topic"], topic))
            for partition in sorted(set(topic_rows["partition"].to_pylist())):
                part = topic_rows.filter(pc.equal(topic_rows["partition"], partition))
                batch_id = f"{day.replace('-', '')}-compacted-{topic_kinds[topic]}-p{partition}-{uuid.uuid4().hex[:8]}"
                path = self.files.location(f"{integration}/{topic_kinds[topic]}/date={day}/{batch_id}.parquet")
                size = self.files.write_parquet(part, path)
                new.append((RawBatch(batch_id, integration, topic_kinds[topic], topic, path, part.num_rows, size, created_at, self.files), part))
        record_loaded([b for b, _ in new])
        with self.state.transaction() as db:
            for batch, part in new:
                self._insert_batch(db, batch, part)
            old = [(b.batch_id,) for b in batches]
            db.executemany("DELETE FROM raw_batch_ranges WHERE batch_id = ?", old)
            db.executemany("DELETE FROM raw_batches WHERE batch_id = ?", old)
        for batch in batches:
            self.files.delete(batch.path)
        return [b for b, _ in new]

    # -- erasures ------------------------------------------------------------------

    def record_erasures(self, integration: str, erased: dict[str, datetime]) -> None:
        """Puts customers' erasure on record (customer_id: the tombstone's time). A
        customer erased again needs raw rewritten again: messages about them may
        have arrived since."""
        if not erased:
            return
        with self.state.transaction() as db:
            db.executemany(
                "INSERT INTO erasures VALUES (?, ?, ?, 0) ON CONFLICT (integration, customer_id) "
                "DO UPDATE SET erased_at = CASE WHEN excluded.erased_at > erasures.erased_at THEN excluded.erased_at "
                "ELSE erasures.erased_at END, raw_erased = 0",
                [(integration, customer, at.isoformat()) for customer, at in sorted(erased.items())],
            )

    def erased_customers(self, integration: str, pending_only: bool = False) -> list[str]:
        """The customers erased (with `pending_only`, those raw still holds)."""
        with self.state.connect() as db:
            rows = db.execute(
                "SELECT customer_id FROM erasures WHERE integration = ? AND (raw_erased = 0 OR ? = 0) ORDER BY 1",
                (integration, int(pending_only)),
            ).fetchall()
        return [customer for (customer,) in rows]

    def mark_raw_erased(self, integration: str, customers: list[str]) -> None:
        with self.state.transaction() as db:
            db.executemany(
                "UPDATE erasures SET raw_erased = 1 WHERE integration = ? AND customer_id = ?",
                [(integration, customer) for customer in customers],
            )

    def forget_integration(self, integration: str) -> int:
        """Deletes an integration's batches and offsets; returns how many files went."""
        batches = self.batches(integration)
        with self.state.transaction() as db:
            db.execute(
                "DELETE FROM raw_batch_ranges WHERE batch_id IN "
                "(SELECT batch_id FROM raw_batches WHERE integration = ?)",
                (integration,),
            )
            db.execute(
                "DELETE FROM unreadable_batches WHERE batch_id IN "
                "(SELECT batch_id FROM raw_batches WHERE integration = ?)",
                (integration,),
            )
            db.execute("DELETE FROM raw_batches WHERE integration = ?", (integration,))
            db.execute("DELETE FROM raw_offsets WHERE integration = ?", (integration,))
            db.execute("DELETE FROM gaps WHERE integration = ?", (integration,))
            db.execute("DELETE FROM erasures WHERE integration = ?", (integration,))
        for batch in batches:
            self.files.delete(batch.path)
        return len(batches)

    def remove_orphans(self, integration: str, shard: Shard | None = None) -> list[str]:
        """Deletes the integration's batch files (those of `shard`, if one is given)
        that no manifest row names: leftovers of a crash between writing a file and
        recording it, whose messages will be read again. Call it holding the lock
        of the integration, or of the shard: another drain may be between writing a
        file and recording it at this very moment."""
        known = {batch.path for batch in self.batches(integration)}
        orphans = [
            location for location in self.files.list(integration, (".parquet", ".parquet.tmp"))
            if location not in known and "/date=" in location
            and (shard is None or f"-{shard.name}.parquet" in location)
        ]
        for location in orphans:
            self.files.delete(location)
        return orphans

    def _writing(self, what: str) -> AbstractContextManager[None]:
        """A local disk's failure as one HomeUnwritable line (S3's have their own)."""
        return writing_under(Path(self.files.base), what) if self.files.is_local else nullcontext()
