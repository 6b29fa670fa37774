"""Raw Parquet micro-batches and their manifest (no Dagster imports).

A batch is a Parquet file of Kafka messages kept byte for byte. The manifest, a
SQLite file beside the batches, is the source of truth: a batch exists once its
row is in `raw_batches`, and the offsets to read next live in `raw_offsets`, both
written in one transaction after the file is durable. SQLite (WAL) lets the CLI,
the sensor and the UI read the manifest while a run writes it.
"""

from __future__ import annotations

import os
import sqlite3
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Callable, Iterator

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from gig_etl.contract import TopicKind
from gig_etl.lib.home import writing_under

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

PARQUET_ROW_GROUP_SIZE = 128 * 1024
PARQUET_COMPRESSION = "zstd"

_MANIFEST_DDL = """
CREATE TABLE IF NOT EXISTS raw_batches (
    batch_id     TEXT PRIMARY KEY,
    integration  TEXT NOT NULL,
    topic_kind   TEXT NOT NULL,
    topic        TEXT NOT NULL,
    path         TEXT NOT NULL UNIQUE,  -- relative to the raw root
    rows         INTEGER NOT NULL,
    bytes        INTEGER NOT NULL,
    created_at   TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS raw_batches_by_source ON raw_batches (integration, topic_kind);
CREATE TABLE IF NOT EXISTS raw_batch_ranges (
    batch_id     TEXT NOT NULL REFERENCES raw_batches (batch_id),
    partition    INTEGER NOT NULL,
    first_offset INTEGER NOT NULL,
    last_offset  INTEGER NOT NULL,
    PRIMARY KEY (batch_id, partition)
);
CREATE TABLE IF NOT EXISTS drain_history (
    integration  TEXT NOT NULL,
    topic        TEXT NOT NULL,
    lag_before   INTEGER NOT NULL,   -- messages behind when the drain began
    drained      INTEGER NOT NULL,
    finished_at  TEXT NOT NULL
);
-- Offsets recorded as unread that the broker no longer had (retention passed them):
-- lost to us, reported here and in the run, never silently skipped.
CREATE TABLE IF NOT EXISTS gaps (
    integration  TEXT NOT NULL,
    topic        TEXT NOT NULL,
    partition    INTEGER NOT NULL,
    from_offset  INTEGER NOT NULL,
    to_offset    INTEGER NOT NULL,   -- exclusive: the broker's earliest offset then
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
    next_offset  INTEGER NOT NULL,
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
    path: Path
    rows: int
    bytes: int
    created_at: str


@dataclass(frozen=True)
class UnreadableRecord:
    batch: RawBatch
    reason: str
    set_aside: bool


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_durably(table: pa.Table, path: Path) -> int:
    """Writes `table` to `path` so that a crash leaves the old file or the new one,
    whole: a temporary name, fsync, rename, fsync of the folder. Returns the size."""
    temporary = path.with_suffix(".parquet.tmp")
    try:
        pq.write_table(table, temporary, row_group_size=PARQUET_ROW_GROUP_SIZE, compression=PARQUET_COMPRESSION)
        with open(temporary, "rb+") as handle:
            os.fsync(handle.fileno())
    except BaseException:
        temporary.unlink(missing_ok=True)  # on a full disk, give the space back now
        raise
    os.replace(temporary, path)
    _fsync_dir(path.parent)
    return path.stat().st_size


class UnreadableBatch(RuntimeError):
    """A raw batch's file is missing, truncated or not a raw batch; says which and why."""


def read_raw_batch(batch: RawBatch, columns: list[str] | None = None) -> pa.Table:
    """The batch's messages (or those columns of them); raises UnreadableBatch when
    its file cannot give them."""
    try:
        table = pq.read_table(batch.path, columns=columns)
        found = [(f.name, f.type) for f in table.schema]
    # Gone, truncated, not Parquet, or metadata that is not even UTF-8 (ValueError).
    except (OSError, ValueError, pa.ArrowException) as exc:
        raise UnreadableBatch(f"raw batch {batch.batch_id} ({batch.path}) cannot be read: {exc}") from exc
    expected = [(f.name, f.type) for f in RAW_MESSAGE_SCHEMA if columns is None or f.name in columns]
    if found != expected:
        raise UnreadableBatch(
            f"raw batch {batch.batch_id} ({batch.path}) does not hold raw messages: columns {table.schema.names}"
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
    return kept.num_rows, write_durably(kept, batch.path)


class RawStore:
    """The raw layer under `root`: `<integration>/<topic kind>/date=<day>/<batch>.parquet`."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.manifest_path = self.root / "manifest.sqlite"
        with writing_under(self.root, "the raw manifest"):
            self.root.mkdir(parents=True, exist_ok=True)
            with closing(self._connect()) as db:
                db.executescript(_MANIFEST_DDL)

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.manifest_path, timeout=30, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        return db

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction on the manifest: all of it, or none."""
        with closing(self._connect()) as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    def _insert_batch(self, db: sqlite3.Connection, batch: RawBatch, table: pa.Table) -> None:
        """The manifest rows of a batch: itself, and the offsets it holds per partition."""
        db.execute(
            "INSERT INTO raw_batches VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (batch.batch_id, batch.integration, batch.topic_kind, batch.topic, str(batch.path.relative_to(self.root)),
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
        db: sqlite3.Connection, integration: str, topic: str, next_offsets: dict[int, int], at: str
    ) -> None:
        db.executemany(
            "INSERT INTO raw_offsets VALUES (?, ?, ?, ?, ?) ON CONFLICT (integration, topic, partition) "
            "DO UPDATE SET next_offset = excluded.next_offset, updated_at = excluded.updated_at",
            [(integration, topic, p, o, at) for p, o in sorted(next_offsets.items())],
        )

    def next_offsets(self, integration: str, topic: str) -> dict[int, int]:
        """The recorded next offset to read, per partition, for this integration's topic."""
        with closing(self._connect()) as db:
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
        with self._transaction() as db:
            db.executemany(
                "INSERT INTO gaps VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                [(integration, topic, p, start, end, found_at) for p, start, end in gaps],
            )
            # A gap is found only below the broker's earliest offset: this moves forward.
            self._record_next_offsets(db, integration, topic, {p: end for p, _, end in gaps}, found_at)

    def gaps(self, integration: str) -> list[tuple[str, int, int, int]]:
        """(topic, partition, from, to) of every gap recorded for the integration."""
        with closing(self._connect()) as db:
            return db.execute(
                "SELECT topic, partition, from_offset, to_offset FROM gaps WHERE integration = ? "
                "ORDER BY topic, partition, from_offset",
                (integration,),
            ).fetchall()

    def record_drain(self, integration: str, topic: str, lag_before: int, drained: int) -> None:
        with closing(self._connect()) as db:
            db.execute(
                "INSERT INTO drain_history VALUES (?, ?, ?, ?, ?)", (integration, topic, lag_before, drained, _now())
            )

    def recent_lags(self, integration: str, topic: str, runs: int = 3) -> list[int]:
        """Lag before each of the latest `runs` drains, oldest first."""
        with closing(self._connect()) as db:
            rows = db.execute(
                "SELECT lag_before FROM drain_history WHERE integration = ? AND topic = ? "
                "ORDER BY finished_at DESC, rowid DESC LIMIT ?",
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
    ) -> RawBatch:
        """Writes `table` as a durable Parquet file, then records it and the offsets
        after it in one manifest transaction. A crash before the transaction leaves
        an orphan file that `remove_orphans` deletes; never a recorded gap."""
        created_at = _now()
        batch_id = f"{created_at[:19].replace(':', '').replace('-', '')}-{uuid.uuid4().hex[:12]}"
        relative = Path(integration) / topic_kind.value / f"date={created_at[:10]}" / f"{batch_id}.parquet"
        final = self.root / relative
        # Disk full or unwritable: the run stops with nothing recorded, and what
        # was half written is an orphan the next run removes.
        with writing_under(self.root, "a raw batch"):
            final.parent.mkdir(parents=True, exist_ok=True)
            size = write_durably(table, final)
            batch = RawBatch(batch_id, integration, topic_kind.value, topic, final, table.num_rows, size, created_at)
            with self._transaction() as db:
                self._insert_batch(db, batch, table)
                self._record_next_offsets(db, integration, topic, next_offsets, created_at)
        return batch

    def batches(self, integration: str | None = None, topic_kind: TopicKind | None = None) -> list[RawBatch]:
        query = "SELECT * FROM raw_batches WHERE (?1 IS NULL OR integration = ?1) AND (?2 IS NULL OR topic_kind = ?2)"
        with closing(self._connect()) as db:
            rows = db.execute(query + " ORDER BY created_at, batch_id", (integration, topic_kind and topic_kind.value))
            return [
                RawBatch(b, i, k, t, self.root / p, n, size, c) for b, i, k, t, p, n, size, c in rows.fetchall()
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
                    with closing(self._connect()) as db:
                        db.execute(
                            "UPDATE raw_batches SET rows = ?, bytes = ? WHERE batch_id = ?", (rows, size, batch.batch_id)
                        )
                    rewritten += 1
        return rewritten

    # -- batches that cannot be read --------------------------------------------

    def record_unreadable(self, batch_id: str, reason: str) -> None:
        """Notes a batch whose file cannot be read, for the next drain to read again
        from Kafka (`replace_batch`) or to set aside."""
        with closing(self._connect()) as db:
            db.execute(
                "INSERT INTO unreadable_batches VALUES (?, ?, ?, 0) ON CONFLICT (batch_id) DO NOTHING",
                (batch_id, reason, _now()),
            )

    def set_aside(self, batch_id: str, reason: str) -> None:
        """A batch that cannot be read nor drained again: kept on record, with why."""
        with closing(self._connect()) as db:
            db.execute(
                "INSERT INTO unreadable_batches VALUES (?, ?, ?, 1) ON CONFLICT (batch_id) "
                "DO UPDATE SET reason = excluded.reason, set_aside = 1",
                (batch_id, reason, _now()),
            )

    def readable_again(self, batch_id: str) -> None:
        with closing(self._connect()) as db:
            db.execute("DELETE FROM unreadable_batches WHERE batch_id = ?", (batch_id,))

    def unreadable(self, integration: str) -> list[UnreadableRecord]:
        """The integration's batches on record as unreadable, set aside or not."""
        with closing(self._connect()) as db:
            rows = db.execute(
                "SELECT u.batch_id, u.reason, u.set_aside FROM unreadable_batches AS u "
                "JOIN raw_batches AS b USING (batch_id) WHERE b.integration = ? ORDER BY b.created_at, u.batch_id",
                (integration,),
            ).fetchall()
        batches = {b.batch_id: b for b in self.batches(integration)}
        return [UnreadableRecord(batches[b], reason, bool(aside)) for b, reason, aside in rows]

    def batch_ranges(self, batch_id: str) -> dict[int, tuple[int, int]]:
        """The offsets a batch holds, per partition: (first, last), both included."""
        with closing(self._connect()) as db:
            rows = db.execute(
                "SELECT partition, first_offset, last_offset FROM raw_batch_ranges WHERE batch_id = ?", (batch_id,)
            ).fetchall()
        return {p: (first, last) for p, first, last in rows}

    def replace_batch(self, old: RawBatch, table: pa.Table) -> RawBatch:
        """Puts `table`, the messages of the unreadable `old` read again from Kafka, in
        its place: a new batch (so a warehouse that loaded the old one counts them as
        duplicates), recorded in one transaction that also drops the old one."""
        batch_id = f"{old.batch_id}-redrained-{uuid.uuid4().hex[:8]}"
        path = old.path.with_name(f"{batch_id}.parquet")
        with writing_under(self.root, "a raw batch"):
            path.parent.mkdir(parents=True, exist_ok=True)
            size = write_durably(table, path)
            new = RawBatch(batch_id, old.integration, old.topic_kind, old.topic, path, table.num_rows, size, old.created_at)
            with self._transaction() as db:
                self._insert_batch(db, new, table)
                db.execute("DELETE FROM raw_batch_ranges WHERE batch_id = ?", (old.batch_id,))
                db.execute("DELETE FROM raw_batches WHERE batch_id = ?", (old.batch_id,))
                db.execute("DELETE FROM unreadable_batches WHERE batch_id = ?", (old.batch_id,))
        old.path.unlink(missing_ok=True)
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
        merged = pa.concat_tables([pq.read_table(b.path) for b in batches]).sort_by(
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
                path = self.root / integration / topic_kinds[topic] / f"date={day}" / f"{batch_id}.parquet"
                path.parent.mkdir(parents=True, exist_ok=True)
                size = write_durably(part, path)
                new.append((RawBatch(batch_id, integration, topic_kinds[topic], topic, path, part.num_rows, size, created_at), part))
        record_loaded([b for b, _ in new])
        with self._transaction() as db:
            for batch, part in new:
                self._insert_batch(db, batch, part)
            old = [(b.batch_id,) for b in batches]
            db.executemany("DELETE FROM raw_batch_ranges WHERE batch_id = ?", old)
            db.executemany("DELETE FROM raw_batches WHERE batch_id = ?", old)
        for batch in batches:
            batch.path.unlink(missing_ok=True)
        return [b for b, _ in new]

    # -- erasures ------------------------------------------------------------------

    def record_erasures(self, integration: str, erased: dict[str, datetime]) -> None:
        """Puts customers' erasure on record (customer_id: the tombstone's time). A
        customer erased again needs raw rewritten again: messages about them may
        have arrived since."""
        if not erased:
            return
        with self._transaction() as db:
            db.executemany(
                "INSERT INTO erasures VALUES (?, ?, ?, 0) ON CONFLICT (integration, customer_id) "
                "DO UPDATE SET erased_at = max(erased_at, excluded.erased_at), raw_erased = 0",
                [(integration, customer, at.isoformat()) for customer, at in sorted(erased.items())],
            )

    def erased_customers(self, integration: str, pending_only: bool = False) -> list[str]:
        """The customers erased (with `pending_only`, those raw still holds)."""
        with closing(self._connect()) as db:
            rows = db.execute(
                "SELECT customer_id FROM erasures WHERE integration = ? AND (raw_erased = 0 OR ? = 0) ORDER BY 1",
                (integration, int(pending_only)),
            ).fetchall()
        return [customer for (customer,) in rows]

    def mark_raw_erased(self, integration: str, customers: list[str]) -> None:
        with self._transaction() as db:
            db.executemany(
                "UPDATE erasures SET raw_erased = 1 WHERE integration = ? AND customer_id = ?",
                [(integration, customer) for customer in customers],
            )

    def forget_integration(self, integration: str) -> int:
        """Deletes an integration's batches and offsets; returns how many files went."""
        batches = self.batches(integration)
        with self._transaction() as db:
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
            batch.path.unlink(missing_ok=True)
        return len(batches)

    def remove_orphans(self, integration: str) -> list[Path]:
        """Deletes the integration's batch files that no manifest row names: leftovers
        of a crash between writing a file and recording it, whose messages will be
        read again. Call it holding the integration's lock: another integration's
        drain may be between writing a file and recording it at this very moment."""
        known = {batch.path for batch in self.batches(integration)}
        orphans = [
            path
            for pattern in ("*/date=*/*.parquet", "*/date=*/*.parquet.tmp")
            for path in (self.root / integration).glob(pattern)
            if path not in known
        ]
        for path in orphans:
            path.unlink()
        return orphans
