"""Loading raw batches into the warehouse: consecutive batches of one topic as
a chunk, in one DuckDB transaction.

The rules (GIG_STREAM.md, "What actually arrives"): a message_id seen before
changes nothing; each attribute keeps its newest value; a tombstone erases the
customer; bad input goes to `quarantine` with its reason. A batch's rows are
always loaded + duplicates + quarantined. The rules do not depend on the order
batches load in, nor on how they are grouped, so a chunk gives the same rows as
its batches one by one.
"""

from __future__ import annotations

import json
import random
import shutil
import time
from collections import Counter, deque
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field, fields, replace
from datetime import datetime
from itertools import accumulate
from pathlib import Path
from typing import Callable, Iterator

import duckdb
import polars as pl
import pyarrow as pa

from gig_etl.contract import SUBSCRIPTION_CHANNELS, TopicKind
from gig_etl.lib import chunk_steps
from gig_etl.lib.catalog import (
    DEFAULT_MAX_ATTRIBUTE_COLUMNS,
    dynamic_columns,
    known_attribute_catalog,
    place_new_attributes,
)
from gig_etl.lib.history import forget_history_of
from gig_etl.lib.identifiers import ATTRIBUTE_PREFIX, EXTRA_ATTRIBUTES, UnsafeIdentifier, quote_identifier
from gig_etl.lib.parse import QUARANTINE_SCHEMA, ParsedBatch, QuarantineReason, parse_raw_batch, scratch_database
from gig_etl.lib.raw_store import RawBatch, RawStore, UnreadableBatch, read_raw_batch
from gig_etl.lib.registry import Integration
from gig_etl.lib.transform import new_attribute_types
from gig_etl.lib.warehouse import (
    ANALYST_SCHEMA,
    ANALYST_TABLES,
    INTEGRATION_STATE,
    INTERNAL_SCHEMA,
    LAKE,
    Lake,
    attach_lake,
    connect_warehouse,
    profile_columns,
    sql_text,
    sync_profile_columns,
    transaction,
)

# The Kafka position as analysts' tables name it (`partition` and `offset` are
# SQL keywords); parsing keeps Kafka's names.
_KAFKA_POSITION = '("partition" AS kafka_partition, "offset" AS kafka_offset)'

# Tables holding an integration's data, cleared by a rebuild.
INTEGRATION_TABLES = (*ANALYST_TABLES, *INTEGRATION_STATE)


@dataclass
class LoadCounts:
    rows: int = 0  # raw messages read: loaded + duplicates + quarantined
    loaded: int = 0
    duplicates: int = 0
    quarantined: int = 0
    erasures: int = 0  # tombstones applied (part of loaded)
    erased_messages: int = 0  # messages about erased customers, dropped (part of loaded)
    # Quarantined messages about erased customers, not kept in `quarantine` (part
    # of quarantined), and those an erasure took out of it.
    quarantine_erased: int = 0
    batches: int = 0
    quarantined_by_reason: dict[str, int] = field(default_factory=dict)  # QuarantineReason: messages

    def __add__(self, other: LoadCounts) -> LoadCounts:
        return LoadCounts(*(
            dict(Counter(getattr(self, f.name)) + Counter(getattr(other, f.name))) if f.name == "quarantined_by_reason"
            else getattr(self, f.name) + getattr(other, f.name)
            for f in fields(self)
        ))


def _rows(db: duckdb.DuckDBPyConnection, query: str, params: list | None = None) -> pl.DataFrame:
    # execute(), not sql(): a relation from sql() fetched as Arrow ran a lake scan
    # ten times slower than the same query executed.
    return pl.from_arrow(db.execute(query, params or []).to_arrow_table())


def _run(db: duckdb.DuckDBPyConnection, query: str, params: list | None = None) -> None:
    db.execute(query, params or []).fetchall()


@contextmanager
def _one_thread_fewer(db: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """The database works with one thread fewer (at least one) meanwhile, leaving
    a core to a thread of ours."""
    [(threads,)] = db.execute("SELECT current_setting('threads')").fetchall()
    _run(db, f"SET threads = {max(1, int(threads) - 1)}")
    try:
        yield
    finally:
        try:
            _run(db, f"SET threads = {int(threads)}")
        except duckdb.Error:
            pass  # a connection that failed: the error it raised is the one to see


@dataclass
class Erasures:
    """The integration's erased customers (a customer_id column), as the raw
    manifest records them, with those of the batches loaded since."""

    customers: pl.DataFrame

    @classmethod
    def of(cls, store: RawStore, integration: str) -> Erasures:
        return cls(pl.DataFrame({"customer_id": store.erased_customers(integration)}, schema={"customer_id": pl.String}))

    def with_tombstones(self, tombstones: pl.DataFrame) -> pl.DataFrame:
        return pl.concat([self.customers, tombstones.select("customer_id")]).unique()


def seed_attribute_catalog(db: duckdb.DuckDBPyConnection, integration: Integration) -> int:
    """Every attribute the contract knows, as of the approval; returns how many were new."""
    seed = known_attribute_catalog(integration.name).with_columns(
        created_at=pl.lit(datetime.fromisoformat(integration.approved_at or integration.created_at))
    )
    db.register("catalog_seed", seed.to_arrow())
    missing = (
        "SELECT * FROM catalog_seed AS s WHERE NOT EXISTS (SELECT 1 FROM attribute_catalog AS c "
        "WHERE c.integration = s.integration AND c.attribute = s.attribute)"
    )
    # Looked for first: an insert of nothing still costs the lake a write, and
    # every load after the first has nothing to add.
    [(absent,)] = db.execute(f"SELECT count(*) FROM ({missing})").fetchall()
    if not absent:
        return 0
    [(added,)] = db.execute(f"INSERT INTO attribute_catalog BY NAME {missing}").fetchall()
    return added


# What DuckDB and polars raise on a batch's content (a value, a name, a size or a
# count they cannot hold), as against the disk or the transaction failing: a batch
# refused with one of these has the messages it cannot hold found and quarantined.
REFUSED_CONTENT = (
    duckdb.ConversionException, duckdb.InvalidInputException, duckdb.OutOfRangeException,
    duckdb.CatalogException, duckdb.BinderException, duckdb.ConstraintException, duckdb.OutOfMemoryException,
    duckdb.NotImplementedException, pl.exceptions.PolarsError, pl.exceptions.PanicException, UnsafeIdentifier,
)

# How many times a batch's refused messages are looked for before the rest of it
# is quarantined too: messages that load alone but not together need another pass.
_REFUSAL_SEARCHES = 3


@dataclass(frozen=True)
class ReadBatch:
    """A raw batch read and parsed: all of its load that needs no warehouse.
    `parsed` is None when the file cannot be read (`unreadable` says why) or its
    content cannot be parsed as a whole (the load then parses it apart)."""

    batch: RawBatch
    rows: int
    parsed: ParsedBatch | None
    unreadable: str | None = None


def read_batch(batch: RawBatch, tenant_id: str, scratch: duckdb.DuckDBPyConnection | None = None) -> ReadBatch:
    try:
        raw = read_raw_batch(batch)
    except UnreadableBatch as exc:
        return ReadBatch(batch, 0, None, unreadable=str(exc))
    try:
        return ReadBatch(batch, raw.num_rows, parse_raw_batch(raw, TopicKind(batch.topic_kind), tenant_id, scratch))
    except REFUSED_CONTENT:
        return ReadBatch(batch, raw.num_rows, None)


def _refusal(exc: BaseException) -> str:
    first_line = (str(exc).strip().splitlines() or [""])[0]
    return f"the warehouse cannot hold it: {type(exc).__name__}: {first_line[:300]}"


# A chunk's size: every statement of a chunk reads the lake's tables once, so
# fewer, larger chunks read them less often; memory holds one chunk's parse.
CHUNK_MESSAGES = 100_000


@dataclass(frozen=True)
class Chunk:
    """Raw batches of one topic, loaded together. `parsed` is all of theirs, its
    messages, tombstones and quarantine with a `batch` column: the index in
    `batches` of the batch each came from, for the batch's own counts."""

    batches: list[RawBatch]
    rows: list[int]  # per batch
    parsed: ParsedBatch

    @property
    def kind(self) -> TopicKind:
        return TopicKind(self.batches[0].topic_kind)

    @classmethod
    def of(cls, reads: list[ReadBatch]) -> Chunk:
        def tagged(frame: pl.DataFrame, index: int) -> pl.DataFrame:
            return frame.with_columns(pl.lit(index, pl.Int32).alias("batch"))

        parts = [r.parsed for r in reads]
        return cls(
            [r.batch for r in reads],
            [r.rows for r in reads],
            # Not rechunked: DuckDB reads the parts as they are, and a copy would
            # hold the chunk's messages twice.
            ParsedBatch(
                messages=pl.concat([tagged(p.messages, i) for i, p in enumerate(parts)], rechunk=False),
                fields=pl.concat([p.fields for p in parts], rechunk=False),
                tombstones=pl.concat([tagged(p.tombstones, i) for i, p in enumerate(parts)]),
                # A message without a Kafka time is dated by its batch: raw content,
                # so a rebuild or a compaction of raw files gives the same value.
                quarantined=pl.concat([
                    tagged(p.quarantined, i).with_columns(
                        pl.col("kafka_ts").fill_null(datetime.fromisoformat(r.batch.created_at))
                    )
                    for i, (r, p) in enumerate(zip(reads, parts))
                ]),
            ),
        )


def load_batch(
    db: duckdb.DuckDBPyConnection, store: RawStore, integration: Integration, read: ReadBatch, erasures: Erasures,
    max_attribute_columns: int = DEFAULT_MAX_ATTRIBUTE_COLUMNS,
) -> LoadCounts:
    """Loads one raw batch in one transaction: after a crash the warehouse is as
    before the batch, and the next run loads it again. A batch whose content the
    warehouse refuses loads without the messages it refuses, which are quarantined.
    Its erasures are put on record in the raw manifest before the commit (on
    record but not applied, an erasure is applied again: never the other way)."""
    if read.parsed is not None:
        try:
            return _apply_in_transaction(db, store, integration, Chunk.of([read]), erasures, max_attribute_columns)
        except REFUSED_CONTENT:
            pass
    parsed = _without_refused(db, integration, read.batch, TopicKind(read.batch.topic_kind), erasures, max_attribute_columns)
    return _apply_in_transaction(
        db, store, integration, Chunk.of([replace(read, parsed=parsed)]), erasures, max_attribute_columns
    )


def load_chunk(
    db: duckdb.DuckDBPyConnection, store: RawStore, integration: Integration, reads: list[ReadBatch],
    erasures: Erasures, max_attribute_columns: int = DEFAULT_MAX_ATTRIBUTE_COLUMNS,
) -> LoadCounts:
    """Loads parsed raw batches of one topic in one transaction, as `load_batch`
    loads one; if the warehouse refuses some of their content, each batch is
    loaded on its own instead, without what it refuses."""
    if len(reads) > 1:
        try:
            return _apply_in_transaction(db, store, integration, Chunk.of(reads), erasures, max_attribute_columns)
        except REFUSED_CONTENT:
            pass
    return sum((load_batch(db, store, integration, r, erasures, max_attribute_columns) for r in reads), LoadCounts())


def _apply_in_transaction(
    db: duckdb.DuckDBPyConnection, store: RawStore, integration: Integration, chunk: Chunk, erasures: Erasures,
    max_attribute_columns: int,
) -> LoadCounts:
    def apply() -> LoadCounts:
        with transaction(db):
            counts = _apply_chunk(db, integration, chunk, erasures, max_attribute_columns)
            _record_erasures(store, integration.name, chunk.parsed, erasures)
        return counts

    return _retrying_conflicts(apply)


# Two writers of one lake (integrations loading side by side) may find their
# commits conflict, or a SQLite catalog locked past its busy timeout: the batch,
# rolled back whole, is applied again.
_COMMIT_ATTEMPTS = 5


def _retrying_conflicts(apply: Callable[[], LoadCounts]) -> LoadCounts:
    for attempt in range(1, _COMMIT_ATTEMPTS + 1):
        try:
            return apply()
        except duckdb.TransactionException as exc:
            message = str(exc).lower()
            if attempt == _COMMIT_ATTEMPTS or not ("conflict" in message or "locked" in message):
                raise
            time.sleep(random.uniform(0.1, 0.5) * attempt)
    raise AssertionError("unreachable")


def _erased_at(parsed: ParsedBatch) -> pl.DataFrame:
    """The batch's erased customers (customer_id, erased_at: the newest tombstone's time)."""
    return parsed.tombstones.group_by("customer_id").agg(pl.col("kafka_ts").max().alias("erased_at"))


def _record_erasures(store: RawStore, integration: str, parsed: ParsedBatch, erasures: Erasures) -> None:
    erased = _erased_at(parsed)
    if erased.height:
        store.record_erasures(integration, dict(erased.iter_rows()))
        erasures.customers = erasures.with_tombstones(erased)


def _without_refused(
    db: duckdb.DuckDBPyConnection, integration: Integration, batch: RawBatch, kind: TopicKind, erasures: Erasures,
    max_attribute_columns: int,
) -> ParsedBatch:
    """The batch parsed without the messages the warehouse refuses, which join its
    quarantine with the error. They are found by halving: a part is parsed and
    applied in a transaction that is always rolled back, and a part refused is
    halved again, down to single messages."""
    raw = read_raw_batch(batch)

    def refusal(rows: list[int]) -> str | None:
        part = raw.take(rows)
        try:
            parsed = parse_raw_batch(part, kind, integration.tenant_id)
            chunk = Chunk.of([ReadBatch(batch, part.num_rows, parsed)])
            _run(db, "BEGIN TRANSACTION")
            try:
                _apply_chunk(db, integration, chunk, erasures, max_attribute_columns)
            finally:
                try:
                    _run(db, "ROLLBACK")
                except duckdb.TransactionException:
                    pass  # the failure ended the transaction already
        except REFUSED_CONTENT as exc:
            return _refusal(exc)
        return None

    refused: dict[int, str] = {}

    def search(rows: list[int], reason: str) -> None:
        if len(rows) == 1:
            refused[rows[0]] = reason
            return
        found = len(refused)
        for part in (rows[: len(rows) // 2], rows[len(rows) // 2 :]):
            part_reason = refusal(part)
            if part_reason is not None:
                search(part, part_reason)
        if len(refused) == found:  # each half loads alone, not together
            refused.update(dict.fromkeys(rows, reason))

    for _ in range(_REFUSAL_SEARCHES):
        rest = [i for i in range(raw.num_rows) if i not in refused]
        reason = refusal(rest) if rest else None
        if reason is None:
            break
        search(rest, reason)
    else:
        refused.update(dict.fromkeys((i for i in range(raw.num_rows) if i not in refused), reason))
    kept = [i for i in range(raw.num_rows) if i not in refused]
    parsed = parse_raw_batch(raw.take(pa.array(kept, pa.int64())), kind, integration.tenant_id)
    return replace(parsed, quarantined=pl.concat([parsed.quarantined, _quarantine_rows(raw, refused)]))


def _quarantine_rows(raw: pa.Table, reasons: dict[int, str]) -> pl.DataFrame:
    """Quarantine rows (ParsedBatch.quarantined) of the raw messages at `reasons`' positions."""
    rows = sorted(reasons)
    part = raw.take(rows)
    keys = part["key"].to_pylist()
    return pl.DataFrame(
        {
            "topic": part["topic"].to_pylist(),
            "partition": part["partition"].to_pylist(),
            "offset": part["offset"].to_pylist(),
            "kafka_ts": part["timestamp"].to_pylist(),
            "key": keys,
            "key_text": [_utf8_or_none(k) for k in keys],
            "raw_value": part["value"].to_pylist(),
            "reason_code": [QuarantineReason.REFUSED.value] * len(rows),
            "reason": [reasons[i] for i in rows],
        },
        schema=QUARANTINE_SCHEMA,
    )


def _utf8_or_none(key: bytes | None) -> str | None:
    try:
        return key.decode() if key is not None else None
    except UnicodeDecodeError:
        return None


def read_ahead(batches: list[RawBatch], tenant_id: str, ahead_messages: int = 0) -> Iterator[ReadBatch]:
    """The batches read and parsed, in order, on a thread of their own while the
    caller loads: parsing needs no warehouse, and both halves release the GIL
    (DuckDB, polars, Arrow), so the two overlap on two cores. Parsed batches
    wait for the caller up to `ahead_messages` messages (at least one batch), so
    memory holds about that much, never the backlog."""
    if not batches:
        return
    # The scratch database outlives the reader, so no parse still uses it once closed.
    with scratch_database() as scratch, ThreadPoolExecutor(max_workers=1, thread_name_prefix="gig-etl-parse") as reader:
        upcoming: deque[tuple[RawBatch, Future[ReadBatch]]] = deque()
        following = iter(batches)

        def submit_while_room() -> None:
            while not upcoming or sum(b.rows for b, _ in upcoming) < ahead_messages:
                batch = next(following, None)
                if batch is None:
                    return
                upcoming.append((batch, reader.submit(read_batch, batch, tenant_id, scratch)))

        submit_while_room()
        while upcoming:
            _, current = upcoming.popleft()
            submit_while_room()
            yield current.result()


def _apply_chunk(
    db: duckdb.DuckDBPyConnection, integration: Integration, chunk: Chunk, erasures: Erasures,
    max_attribute_columns: int,
) -> LoadCounts:
    name, kind, parsed = integration.name, chunk.kind, chunk.parsed
    batch_ids = [b.batch_id for b in chunk.batches]
    # The snapshot this commit makes says what it was (ducklake_snapshots()).
    _run(
        db, f"CALL {LAKE}.set_commit_message('gig-etl', ?, extra_info => ?)",
        [
            f"load {name}: raw batch{'es' if len(batch_ids) > 1 else ''} {', '.join(batch_ids)}",
            json.dumps({"integration": name, "batch_ids": batch_ids}),
        ],
    )
    db.register("chunk_integration", pl.DataFrame({"integration": [name]}).to_arrow())
    db.register("chunk_messages", parsed.messages.with_row_index("row").to_arrow())
    db.register("chunk_fields", parsed.fields.to_arrow())
    tombstones = _erased_at(parsed)
    erased = erasures.with_tombstones(tombstones)
    db.register("erased_customer_ids", erased.to_arrow())
    chunk_steps.unique_messages(db)
    chunk_steps.new_messages(db, name)
    chunk_steps.kept_messages(db)
    new_count, kept_count, seen_count = chunk_steps.message_counts(db)
    db.register("chunk_tombstones", tombstones.select("customer_id").to_arrow())
    _run(
        db, "CREATE OR REPLACE TEMP TABLE touched_customers AS "
        "SELECT customer_id FROM kept_messages UNION SELECT customer_id FROM chunk_tombstones",
    )
    # Read before this transaction writes anything: a lake read through the
    # transaction's own changes took five times as long. The merge compares the
    # new values with it, not with the whole of attribute_state.
    _read_touched_state(db, name)

    if kind is TopicKind.EVENTS and seen_count:
        _keep_first_copy(db, name)
    _run(db, "INSERT INTO seen_messages SELECT ?, hash_upper, hash_lower FROM new_messages", [name])

    quarantine_erased = 0
    if tombstones.height:
        event_types, quarantine_erased = _erase_customers(db, name, tombstones)
        _recount_event_catalog(db, name, event_types)

    chunk_steps.observations(db, kind)
    new_types = new_attribute_types(_rows(db, chunk_steps.unknown_observations(db, kind)).lazy(), name).collect()
    if new_types.height:
        db.register("seen_attributes", new_types.select("attribute").to_arrow())
        catalogued = set(_rows(
            db, "SELECT attribute FROM attribute_catalog WHERE integration = ? "
            "AND attribute IN (SELECT attribute FROM seen_attributes)", [name],
        )["attribute"])
        columns = profile_columns(db)
        placed = place_new_attributes(
            [a.removeprefix(ATTRIBUTE_PREFIX) for a in new_types["attribute"] if a not in catalogued],
            columns, max_attribute_columns - dynamic_columns(columns),
        )
        # A name keeps the place it was given when first seen.
        new_types = new_types.with_columns(
            column_name=pl.col("attribute").str.strip_prefix(ATTRIBUTE_PREFIX).replace_strict(placed, default=None)
        )
        db.register("new_attribute_types", new_types.to_arrow())
        _run(
            db,
            "MERGE INTO attribute_catalog AS c USING new_attribute_types AS n "
            "ON c.integration = n.integration AND c.attribute = n.attribute "
            "WHEN MATCHED THEN UPDATE SET data_type = CASE WHEN c.data_type = n.data_type THEN n.data_type "
            "ELSE 'VARCHAR' END, created_at = least(c.created_at, n.created_at) "
            "WHEN NOT MATCHED THEN INSERT BY NAME",
        )
        sync_profile_columns(db)

    chunk_steps.newest_values(db)
    _run(db, sql_text("merge_attribute_state.sql"))
    # Only the customers whose values changed, or who were erased, have profiles
    # to build again: a message whose every value lost to a newer one changes no row.
    _run(
        db, "CREATE OR REPLACE TEMP TABLE changed_customers AS "
        "SELECT customer_id FROM winning_values UNION SELECT customer_id FROM chunk_tombstones",
    )
    # Their state now: what it was, with the values that won.
    _run(
        db, f"CREATE OR REPLACE TEMP TABLE profile_state AS SELECT {_STATE_COLUMNS} FROM touched_state AS s "
        "SEMI JOIN changed_customers USING (customer_id) "
        "ANTI JOIN winning_values AS w ON w.customer_id = s.customer_id AND w.attribute = s.attribute "
        f"UNION ALL SELECT {_STATE_COLUMNS} FROM winning_values",
    )
    _refresh_profiles(db, integration)

    if kind is TopicKind.EVENTS and kept_count:
        _run(
            db, "CREATE OR REPLACE TEMP VIEW chunk_profile_ids AS SELECT customer_id, profile_id FROM refreshed_profiles "
            "UNION ALL SELECT customer_id, profile_id FROM profile_ids_before ANTI JOIN changed_customers USING (customer_id)",
        )
        chunk_steps.new_events(db)
        _run(db, "INSERT INTO events BY NAME SELECT * FROM new_events")
        _add_to_event_catalog(db)

    quarantined = parsed.quarantined.with_columns(
        pl.lit(name).alias("integration"), pl.col("kafka_ts").alias("quarantined_at")
    ).drop("kafka_ts", "key_text", "batch")
    if quarantined.height:
        quarantine_erased += _quarantine(db, name, quarantined, erased)

    per_batch = _counts_per_batch(chunk, _rows(db, "SELECT batch FROM new_messages"))
    db.register("chunk_batch_counts", per_batch.with_columns(
        pl.lit(name).alias("integration"), pl.lit(kind.value).alias("topic_kind")
    ).to_arrow())
    _run(
        db,
        "INSERT INTO loaded_batches BY NAME SELECT integration, batch_id, topic_kind, rows, loaded, duplicates, "
        "quarantined, erasures, now() AS loaded_at FROM chunk_batch_counts",
    )
    return LoadCounts(
        rows=sum(chunk.rows),
        loaded=new_count + parsed.tombstones.height,
        duplicates=parsed.messages.height - new_count,
        quarantined=parsed.quarantined.height,
        erasures=parsed.tombstones.height,
        erased_messages=new_count - kept_count,
        quarantine_erased=quarantine_erased,
        batches=len(chunk.batches),
        quarantined_by_reason=dict(parsed.quarantined["reason_code"].value_counts().iter_rows()),
    )


def _counts_per_batch(chunk: Chunk, new: pl.DataFrame) -> pl.DataFrame:
    """Each batch of the chunk's rows, loaded, duplicates, quarantined and erasures
    (a re-sent message counts as a duplicate in the batch of the copy not kept)."""
    def per_batch(frame: pl.DataFrame, name: str) -> pl.DataFrame:
        return frame.group_by("batch").agg(pl.len().cast(pl.Int64).alias(name))

    counts = pl.DataFrame(
        {"batch": range(len(chunk.batches)), "batch_id": [b.batch_id for b in chunk.batches], "rows": chunk.rows},
        schema={"batch": pl.Int32, "batch_id": pl.String, "rows": pl.Int64},
    )
    for frame, name in (
        (chunk.parsed.messages, "messages"), (new, "new"),
        (chunk.parsed.quarantined, "quarantined"), (chunk.parsed.tombstones, "erasures"),
    ):
        counts = counts.join(per_batch(frame, name), on="batch", how="left")
    counts = counts.fill_null(0).with_columns(
        loaded=pl.col("new") + pl.col("erasures"), duplicates=pl.col("messages") - pl.col("new")
    )
    unaccounted = counts.filter(pl.col("loaded") + pl.col("duplicates") + pl.col("quarantined") != pl.col("rows"))
    assert unaccounted.is_empty(), unaccounted
    return counts.drop("batch", "messages", "new")


def _quarantine(
    db: duckdb.DuckDBPyConnection, integration: str, quarantined: pl.DataFrame, erased: pl.DataFrame
) -> int:
    """Keeps the batch's bad messages, each with the customer its value names. Nothing
    about an erased customer is kept, bad input included (counted all the same);
    raw loses it too (`erase_from_raw`). Returns how many were not kept so."""
    db.register("new_quarantine", quarantined.to_arrow())
    db.register("erasure_targets", erased.to_arrow())
    _run(
        db,
        "CREATE OR REPLACE TEMP TABLE quarantine_candidates AS "
        "SELECT *, about_customers(key, raw_value, customer_id) AS about_erased "
        "FROM (SELECT *, value_customer_id(raw_value) AS customer_id FROM new_quarantine)",
    )
    [(about_erased,)] = db.execute(
        'INSERT INTO raw_erasure_positions SELECT integration, topic, "partition", "offset" '
        "FROM quarantine_candidates WHERE about_erased"
    ).fetchall()
    # A message quarantined once stays so: a batch loaded again after a crash finds it there.
    _run(
        db,
        f"INSERT INTO quarantine BY NAME SELECT * EXCLUDE (about_erased) RENAME {_KAFKA_POSITION} "
        "FROM quarantine_candidates AS c WHERE NOT about_erased AND NOT EXISTS (SELECT 1 FROM quarantine AS q "
        'WHERE q.integration = c.integration AND q.topic = c.topic AND q.kafka_partition = c."partition" '
        'AND q.kafka_offset = c."offset")',
    )
    return about_erased


def _keep_first_copy(db: duckdb.DuckDBPyConnection, integration: str) -> None:
    """An event re-sent on another partition keeps the position of its first copy in
    (partition, offset) order, whichever batch loads first: a rebuild after a
    compaction, which reorders batches, gives the same rows. The copies are the
    chunk's `seen_copies`."""
    _run(
        db,
        'UPDATE events SET kafka_partition = c."partition", kafka_offset = c."offset" FROM seen_copies AS c '
        "WHERE events.integration = ? AND events.event_id = c.message_id "
        'AND row(c."partition", c."offset") < row(events.kafka_partition, events.kafka_offset)',
        [integration],
    )


def _erase_customers(
    db: duckdb.DuckDBPyConnection, integration: str, tombstones: pl.DataFrame
) -> tuple[set[str], int]:
    """Removes everything held about the customers (their erasure is on record in
    the raw manifest). Returns the event types of the events it removed, and how
    many quarantined messages."""
    db.register("erased_customers", tombstones.select("customer_id").to_arrow())
    erased = "(SELECT customer_id FROM erased_customers)"
    erased_types = _rows(
        db, f"SELECT DISTINCT event_type FROM events WHERE integration = ? AND customer_id IN {erased}", [integration]
    )
    # What loads is keyed by its customer_id (parse quarantines a message whose key
    # differs), so these hold nothing about the customers but under their id.
    for table in ("attribute_state", "events"):
        _run(db, f"DELETE FROM {quote_identifier(table)} WHERE integration = ? AND customer_id IN {erased}", [integration])
    # Quarantined messages about them, whatever their key: raw loses them too (`erase_from_raw`).
    db.register("erasure_targets", tombstones.select("customer_id").to_arrow())
    about = "integration = ? AND about_customers(key, raw_value, customer_id)"
    _run(
        db, f"INSERT INTO raw_erasure_positions SELECT integration, topic, kafka_partition, kafka_offset FROM quarantine WHERE {about}",
        [integration],
    )
    [(removed,)] = db.execute(f"DELETE FROM quarantine WHERE {about}", [integration]).fetchall()
    return set(erased_types["event_type"]), removed


# The event catalog is a function of `events`: per type, the first and last
# occurred_at and the count. Batches only add events, so their rows are merged
# in (min, max and count do not depend on the order batches load in); an erasure
# removes events, so the types it touched are counted again from what is held.


def _add_to_event_catalog(db: duckdb.DuckDBPyConnection) -> None:
    """Merges the batch's `new_events` into the catalog, without reading `events`:
    recounting them cost each batch a scan of every event held."""
    _run(
        db,
        "MERGE INTO event_catalog AS c USING ("
        "SELECT integration, event_type, any_value(event_name) AS event_name, min(occurred_at) AS first_seen_at, "
        "max(occurred_at) AS last_seen_at, count(*) AS event_count FROM new_events GROUP BY integration, event_type"
        ") AS n ON c.integration = n.integration AND c.event_type = n.event_type "
        "WHEN MATCHED THEN UPDATE SET first_seen_at = least(c.first_seen_at, n.first_seen_at), "
        "last_seen_at = greatest(c.last_seen_at, n.last_seen_at), event_count = c.event_count + n.event_count "
        "WHEN NOT MATCHED THEN INSERT BY NAME",
    )


def _recount_event_catalog(db: duckdb.DuckDBPyConnection, integration: str, event_types: set[str]) -> None:
    """The catalog rows of `event_types` again, from the events held."""
    if not event_types:
        return
    db.register("catalog_event_types", pl.DataFrame({"event_type": sorted(event_types)}).to_arrow())
    _run(
        db,
        "DELETE FROM event_catalog WHERE integration = ? AND event_type IN (SELECT event_type FROM catalog_event_types)",
        [integration],
    )
    _run(
        db,
        "INSERT INTO event_catalog "
        "SELECT integration, event_type, any_value(event_name), min(occurred_at), max(occurred_at), count(*) "
        "FROM events WHERE integration = ? AND event_type IN (SELECT event_type FROM catalog_event_types) "
        "GROUP BY integration, event_type",
        [integration],
    )


# What the profile and subscription rows are rebuilt from (the position decides ties).
_STATE_COLUMNS = 'customer_id, attribute, value, occurred_at, kafka_ts, "partition", "offset"'


# What `_among` gives for an empty relation.
_NOTHING = "false"


def _among(db: duckdb.DuckDBPyConnection, column: str, relation: str, table: str | None = None) -> tuple[str, list]:
    """SQL (and its parameters) for the range of `column`'s values in `relation`:
    the lake skips the files whose statistics put the column outside it, which a
    join with the relation alone does not, so a lookup reads the files of about
    the same customers, not everything held. Nothing matches an empty relation.
    `table` qualifies the column in the SQL given."""
    quoted = quote_identifier(column)
    [(low, high)] = db.execute(f"SELECT min({quoted}), max({quoted}) FROM {quote_identifier(relation)}").fetchall()
    if low is None:
        return _NOTHING, []
    # DuckLake writes the constants into its own catalog query as text, which a NUL
    # cuts short (a parser error): such a range is left to the join alone.
    if "\x00" in low or "\x00" in high:
        return "true", []
    return f"{quote_identifier(table) + '.' if table else ''}{quoted} BETWEEN ? AND ?", [low, high]


def _read_touched_state(db: duckdb.DuckDBPyConnection, integration: str) -> None:
    """`touched_state`: the stored values of the chunk's `touched_customers` but
    those it erases, each with the row that holds it (`state_row`); and
    `profile_ids_before` (customer_id, profile_id): their profile rows' ids."""
    within, bounds = _among(db, "customer_id", "touched_customers")
    _run(
        db, f"CREATE OR REPLACE TEMP TABLE touched_state AS SELECT {_STATE_COLUMNS}, rowid AS state_row "
        f"FROM attribute_state WHERE integration = ? AND {within} "
        "AND customer_id IN (SELECT customer_id FROM touched_customers EXCEPT SELECT customer_id FROM chunk_tombstones)",
        [integration, *bounds],
    )
    _run(
        db, "CREATE OR REPLACE TEMP TABLE profile_ids_before AS SELECT customer_id, profile_id FROM profiles "
        f"WHERE integration = ? AND {within} AND customer_id IN (SELECT customer_id FROM touched_customers)",
        [integration, *bounds],
    )


def _refresh_profiles(db: duckdb.DuckDBPyConnection, integration: Integration) -> None:
    """Rebuilds the `profiles` and `subscriptions` rows of the `changed_customers`
    from `profile_state` (their attribute state now), given `profile_ids_before`;
    leaves their new rows in `refreshed_profiles`."""
    name = integration.name
    within, bounds = _among(db, "customer_id", "changed_customers")
    _run(
        db, f"DELETE FROM profiles WHERE integration = ? AND {within} "
        "AND customer_id IN (SELECT customer_id FROM changed_customers)", [name, *bounds],
    )
    columns = profile_columns(db)
    places = dict(
        db.execute("SELECT attribute, column_name FROM attribute_catalog WHERE integration = ?", [name]).fetchall()
    )
    holds = {
        place: attribute.removeprefix(ATTRIBUTE_PREFIX) for attribute, place in places.items() if place != EXTRA_ATTRIBUTES
    }
    extra = [attribute.removeprefix(ATTRIBUTE_PREFIX) for attribute, place in places.items() if place == EXTRA_ATTRIBUTES]
    chunk_steps.refreshed_profiles(
        db, integration.identifier, {c: (holds[c], t) for c, t in columns.items() if c in holds}, extra
    )
    _run(db, "INSERT INTO profiles BY NAME SELECT * FROM refreshed_profiles")
    _refresh_subscriptions(db, integration)

    # Events keep the profile_id their customer has now: set where it changed
    # (an identifier that arrived, changed or was cleared).
    _run(
        db, "CREATE OR REPLACE TEMP TABLE changed_profile_ids AS "
        "SELECT c.customer_id, b.profile_id AS before, p.profile_id FROM changed_customers AS c "
        "LEFT JOIN profile_ids_before AS b USING (customer_id) LEFT JOIN refreshed_profiles AS p USING (customer_id) "
        "WHERE b.profile_id IS DISTINCT FROM p.profile_id",
    )
    # A customer who had no profile row has only events waiting with a null
    # profile_id: that constant filter lets the lake skip every file without a
    # null (by its statistics), so a new customer costs no scan of the events held.
    for had_profile, waiting in ((False, "AND events.profile_id IS NULL "), (True, "")):
        _run(
            db, "CREATE OR REPLACE TEMP TABLE profile_id_updates AS "
            f"SELECT customer_id, profile_id FROM changed_profile_ids WHERE before IS {'NOT ' if had_profile else ''}NULL",
        )
        within, bounds = _among(db, "customer_id", "profile_id_updates", table="events")
        if within != _NOTHING:
            _run(
                db,
                "UPDATE events SET profile_id = c.profile_id FROM profile_id_updates AS c "
                f"WHERE events.integration = ? {waiting}AND {within} AND events.customer_id = c.customer_id",
                [name, *bounds],
            )


def _refresh_subscriptions(db: duckdb.DuckDBPyConnection, integration: Integration) -> None:
    """Rebuilds the subscriptions of the profiles the `changed_customers` held
    before or hold now, from `profile_state` (theirs) and the state of the other
    customers of those profiles: customers who share an identifier share a profile."""
    name = integration.name
    _run(
        db, "CREATE OR REPLACE TEMP TABLE affected_profiles AS "
        "SELECT profile_id FROM profile_ids_before SEMI JOIN changed_customers USING (customer_id) "
        "WHERE profile_id IS NOT NULL UNION SELECT profile_id FROM refreshed_profiles",
    )
    within, bounds = _among(db, "profile_id", "affected_profiles")
    in_affected = f"{within} AND profile_id IN (SELECT profile_id FROM affected_profiles)"
    _run(db, f"DELETE FROM subscriptions WHERE integration = ? AND {in_affected}", [name, *bounds])
    if integration.identifier == "customer_id":
        # Each profile is one customer's: its holders are the changed customers
        # with a profile row now, no other customer's, and the profiles table need
        # not be read for them.
        _run(
            db, "CREATE OR REPLACE TEMP TABLE subscription_holders AS "
            "SELECT integration, customer_id, profile_id FROM refreshed_profiles",
        )
    else:
        _run(
            db, "CREATE OR REPLACE TEMP TABLE subscription_holders AS SELECT integration, customer_id, profile_id "
            f"FROM profiles WHERE integration = ? AND {in_affected}", [name, *bounds],
        )
    _run(
        db, "CREATE OR REPLACE TEMP TABLE other_holders AS "
        "SELECT customer_id FROM subscription_holders ANTI JOIN changed_customers USING (customer_id)",
    )
    channels = list(SUBSCRIPTION_CHANNELS)
    state, params = f"SELECT {_STATE_COLUMNS} FROM profile_state WHERE list_contains(?, attribute)", [channels]
    within, bounds = _among(db, "customer_id", "other_holders")
    if within != _NOTHING:  # the other holders' state, read only if there are any
        state += (
            f" UNION ALL SELECT {_STATE_COLUMNS} FROM attribute_state WHERE integration = ? AND {within} "
            "AND customer_id IN (SELECT customer_id FROM other_holders) AND list_contains(?, attribute)"
        )
        params += [name, *bounds, channels]
    _run(db, f"CREATE OR REPLACE TEMP TABLE subscription_state AS {state}", params)
    chunk_steps.refreshed_subscriptions(db)
    _run(db, "INSERT INTO subscriptions BY NAME SELECT * FROM refreshed_subscriptions")


@dataclass
class IntegrationLoad:
    counts: dict[str, LoadCounts]  # per topic kind
    raw_files_erased: int
    unreadable: dict[str, str] = field(default_factory=dict)  # batch id: why its file cannot be read

    @property
    def total(self) -> LoadCounts:
        return sum(self.counts.values(), LoadCounts())


def load_integration(
    db: duckdb.DuckDBPyConnection, store: RawStore, integration: Integration,
    max_attribute_columns: int = DEFAULT_MAX_ATTRIBUTE_COLUMNS,
    on_batch: Callable[[int, int], None] | None = None,
    chunk_messages: int = CHUNK_MESSAGES,
) -> IntegrationLoad:
    """Loads every raw batch of the integration not loaded before, oldest first,
    profiles before events (an event then finds its profile's id at once), in
    chunks of up to `chunk_messages` messages of one topic; then takes the erased
    customers out of raw Parquet and out of the lake's history too. A batch whose
    file cannot be read is put on record in the manifest (the next drain reads it
    again from Kafka) and the batches after it load. `on_batch(done, of)` hears
    of each batch read, for a progress bar."""
    seed_attribute_catalog(db, integration)
    erasures = Erasures.of(store, integration.name)
    done = loaded_batch_ids(db, integration.name)
    counts = {kind.value: LoadCounts() for kind in TopicKind}
    unreadable = {}
    on_record = {r.batch.batch_id for r in store.unreadable(integration.name)}
    pending = sorted(
        (batch for batch in store.batches(integration.name) if batch.batch_id not in done),
        key=lambda batch: batch.topic_kind != TopicKind.PROFILES.value,
    )
    # Per batch, the rows of the batches after it.
    rows_after = list(accumulate((b.rows for b in reversed(pending[1:])), initial=0))[::-1]
    chunk: list[ReadBatch] = []

    def load(reads: list[ReadBatch], still_to_parse: int) -> None:
        if reads:
            kind = reads[0].batch.topic_kind
            # While a chunk's worth or more is still to parse on a core of its own
            # (read_ahead), a DuckDB thread per core here as well contended with
            # it; with little or none (an increment), a scan of a large lake
            # wants every core.
            with _one_thread_fewer(db) if still_to_parse >= chunk_messages else nullcontext():
                counts[kind] = counts[kind] + load_chunk(db, store, integration, reads, erasures, max_attribute_columns)
        reads.clear()

    for position, read in enumerate(read_ahead(pending, integration.tenant_id, chunk_messages)):
        if on_batch is not None:
            on_batch(position, len(pending))
        batch_id = read.batch.batch_id
        if read.unreadable is not None:
            store.record_unreadable(batch_id, read.unreadable)
            unreadable[batch_id] = read.unreadable
        else:
            if batch_id in on_record:  # its file came back
                store.readable_again(batch_id)
            if read.parsed is None:  # parsed apart, on its own
                counts[read.batch.topic_kind] += load_batch(
                    db, store, integration, read, erasures, max_attribute_columns
                )
            else:
                chunk.append(read)
        # A full chunk loads before the next batch's parse is done: the manifest
        # says whether that batch fits.
        following = pending[position + 1] if position + 1 < len(pending) else None
        if chunk and (
            following is None or following.topic_kind != chunk[0].batch.topic_kind
            or sum(r.rows for r in chunk) + following.rows > chunk_messages
        ):
            load(chunk, rows_after[position])
    if on_batch is not None:
        on_batch(len(pending), len(pending))
    # Before raw marks them done: a run that dies in between forgets them next time.
    newly_erased = store.erased_customers(integration.name, pending_only=True)
    if newly_erased:
        forget_history_of(db, newly_erased)
    return IntegrationLoad(counts, erase_from_raw(db, store, integration.name), unreadable)


def erase_from_raw(db: duckdb.DuckDBPyConnection, store: RawStore, integration: str) -> int:
    """Rewrites raw batches without what the warehouse erased; returns the files
    rewritten. What goes is what `sql/erasure.sql` finds about an erased customer:
    the messages keyed by them, and those the warehouse found naming them under
    another key (all quarantined, since a loaded message is keyed by its customer;
    their positions are in raw_erasure_positions). A new erasure reaches back into
    every batch, a batch loaded since is cleared of every erased customer. Both
    are marked done only after the files are rewritten, so a crash in between
    means the next run does it again (it is idempotent)."""
    pending = store.erased_customers(integration, pending_only=True)
    positions = db.sql(
        'SELECT topic, "partition", "offset" FROM raw_erasure_positions WHERE integration = ?', params=[integration]
    ).to_arrow_table()
    # Every batch, those loaded since included: they need no second pass for these.
    rewritten = store.erase_customers(integration, set(pending), positions) if pending else 0
    if pending:
        store.mark_raw_erased(integration, pending)
    unchecked = set(
        _rows(
            db, "SELECT batch_id FROM loaded_batches WHERE integration = ? AND NOT raw_erasures_applied", [integration]
        )["batch_id"]
    )
    if unchecked:
        erased_earlier = set(store.erased_customers(integration)) - set(pending)
        rewritten += store.erase_customers(integration, erased_earlier, positions, unchecked)
        db.register("raw_checked_batches", pl.DataFrame({"batch_id": sorted(unchecked)}).to_arrow())
        _run(
            db, "UPDATE loaded_batches SET raw_erasures_applied = true WHERE integration = ? "
            "AND batch_id IN (SELECT batch_id FROM raw_checked_batches)", [integration],
        )
    # A position is of a batch loaded in this run (unchecked until now) or found by
    # a new erasure (pending): both passes are behind it.
    if positions.num_rows:
        db.register("raw_erased_positions", positions)
        _run(
            db, 'DELETE FROM raw_erasure_positions AS r USING raw_erased_positions AS p WHERE r.integration = ? '
            'AND r.topic = p.topic AND r."partition" = p."partition" AND r."offset" = p."offset"', [integration],
        )
    return rewritten


def loaded_batch_ids(db: duckdb.DuckDBPyConnection, integration: str) -> set[str]:
    return set(_rows(db, "SELECT batch_id FROM loaded_batches WHERE integration = ?", [integration])["batch_id"])


def record_compacted(db: duckdb.DuckDBPyConnection, batches: list[RawBatch]) -> None:
    """Marks merged raw batches as loaded, counting nothing: their messages were
    loaded, and counted, in the batches they replace."""
    for batch in batches:
        _run(
            db, "INSERT INTO loaded_batches (integration, batch_id, topic_kind, rows, loaded, duplicates, quarantined, "
            "erasures, loaded_at) VALUES (?, ?, ?, 0, 0, 0, 0, 0, now())",
            [batch.integration, batch.batch_id, batch.topic_kind],
        )


def rebuild_integration(
    db: duckdb.DuckDBPyConnection, store: RawStore, integration: Integration, scratch: Path,
    max_attribute_columns: int = DEFAULT_MAX_ATTRIBUTE_COLUMNS, on_batch: Callable[[int, int], None] | None = None,
) -> IntegrationLoad:
    """The integration's tables again from raw Parquet alone, with no broker. They
    are built in a lake of their own in the folder `scratch` first; only once that
    load has succeeded do they replace the integration's rows, in one commit, so a
    rebuild that fails leaves the warehouse as it was."""
    shutil.rmtree(scratch, ignore_errors=True)  # of a rebuild that was killed
    rebuilt_lake = Lake(catalog=f"sqlite:{scratch / 'catalog.sqlite'}", data_path=f"{scratch / 'data'}/")
    try:
        with connect_warehouse(rebuilt_lake) as rebuilt:
            load = load_integration(rebuilt, store, integration, max_attribute_columns, on_batch)
        attach_lake(db, rebuilt_lake, read_only=True, alias="rebuilt", use=False)
        try:
            with transaction(db):
                for table in INTEGRATION_TABLES:
                    _run(db, f"DELETE FROM {quote_identifier(table)} WHERE integration = ?", [integration.name])
                # The catalog first: it says which columns `profiles` needs.
                for table in ("attribute_catalog", *(t for t in INTEGRATION_TABLES if t != "attribute_catalog")):
                    if table == "profiles":
                        sync_profile_columns(db)
                    schema = quote_identifier(ANALYST_SCHEMA if table in ANALYST_TABLES else INTERNAL_SCHEMA)
                    _run(db, f"INSERT INTO {quote_identifier(table)} BY NAME SELECT * FROM rebuilt.{schema}.{quote_identifier(table)}")
        finally:
            _run(db, "DETACH rebuilt")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return load


def clear_integration(db: duckdb.DuckDBPyConnection, integration: str) -> None:
    """Removes every row of the integration from the warehouse, in one transaction."""
    with transaction(db):
        for table in INTEGRATION_TABLES:
            _run(db, f"DELETE FROM {quote_identifier(table)} WHERE integration = ?", [integration])
