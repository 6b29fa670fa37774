"""Raw Kafka messages to validated envelopes and fields, or quarantine with a reason.

DuckDB (in memory) shreds the JSON (`sql/shred_*.sql`); everything after is
polars: the checks below read their rules from `gig_etl.contract`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

import duckdb
import polars as pl
import pyarrow as pa

from gig_etl.contract import (
    DECIMAL_LIMIT,
    EVENT_FIELDS,
    PROFILE_ATTRIBUTES,
    PROFILE_MESSAGE_TYPE,
    SCHEMA_VERSION,
    AttributeType,
    TopicKind,
)
from gig_etl.lib.warehouse import sql_text

# RFC 3339 date-time; the zone (Z or ±hh:mm) is what "without a zone" lacks.
# Hours, minutes and seconds in range: a leap second (:60) is refused too, since
# neither polars nor DuckDB holds one. Days in range are checked by the shred's cast.
_HH_MM = r"([01]\d|2[0-3]):[0-5]\d"
_RFC3339_LOCAL = r"^\d{4}-\d{2}-\d{2}[Tt ]" + _HH_MM + r":[0-5]\d(\.\d+)?"
_RFC3339 = _RFC3339_LOCAL + r"([Zz]|[+-]" + _HH_MM + r")$"
_NUMBER_TYPES = ["UBIGINT", "BIGINT", "HUGEINT", "DOUBLE"]
_INTEGER_TYPES = ["UBIGINT", "BIGINT", "HUGEINT"]
# The instants Python holds; DuckDB holds more, which would load and then fail
# whatever reads them back.
PYTHON_MIN_INSTANT = datetime.min.replace(tzinfo=UTC)
PYTHON_MAX_INSTANT = datetime.max.replace(tzinfo=UTC)

# The envelope's fields and the JSON types they must have.
_ENVELOPE_TYPES = {
    "schema_version": _INTEGER_TYPES,
    "message_id": ["VARCHAR"],
    "tenant_id": ["VARCHAR"],
    "customer_id": ["VARCHAR"],
    "type": ["VARCHAR"],
    "occurred_at": ["VARCHAR"],
    "data": ["OBJECT"],
}

_EXPECTED = {
    AttributeType.STRING: "a string",
    AttributeType.DATE: "a date (YYYY-MM-DD)",
    AttributeType.TIMESTAMP: "an RFC 3339 time with a zone",
    AttributeType.INTEGER: "an integer",
    AttributeType.DECIMAL: "a decimal number",
    AttributeType.BOOLEAN: "a boolean",
    AttributeType.STRING_LIST: "a list of strings",
}

VALID_MESSAGE_SCHEMA = pl.Schema(
    {
        "topic": pl.String,
        "partition": pl.Int32,
        "offset": pl.Int64,
        "kafka_ts": pl.Datetime("us", "UTC"),
        "message_id": pl.String,
        "customer_id": pl.String,
        "type": pl.String,
        "occurred_at": pl.Datetime("us", "UTC"),
        "data": pl.String,
    }
)
QUARANTINE_SCHEMA = pl.Schema(
    {
        "topic": pl.String,
        "partition": pl.Int32,
        "offset": pl.Int64,
        "kafka_ts": pl.Datetime("us", "UTC"),
        "key": pl.Binary,
        "key_text": pl.String,  # the key as UTF-8, null when it is not
        "raw_value": pl.Binary,
        "reason_code": pl.String,  # a QuarantineReason
        "reason": pl.String,  # the detail, the bad value included
    }
)
FIELD_SCHEMA = pl.Schema(
    {"partition": pl.Int32, "offset": pl.Int64, "field": pl.String, "json_type": pl.String, "value": pl.String}
)
# As shredded: whether the field's name occurs more than once in its object, and
# for a timestamp field the instant its text names (null if none).
_SHREDDED_FIELD_SCHEMA = pl.Schema({**FIELD_SCHEMA, "repeated": pl.Boolean, "instant": pl.Datetime("us", "UTC")})
# Every field the contract types: profile attributes, then event fields.
_FIELD_SPECS = (*PROFILE_ATTRIBUTES.values(), *EVENT_FIELDS.values())
_TIMESTAMP_FIELDS = [spec.name for spec in _FIELD_SPECS if spec.type is AttributeType.TIMESTAMP]


class QuarantineReason(StrEnum):
    """Why a message was quarantined: a small fixed set, to count by (the
    reason's text beside it names the field and the value)."""

    NOT_TEXT = "not_text"  # the value is not UTF-8
    NOT_AN_OBJECT = "not_an_object"  # not JSON, or JSON but not an object
    NULL_EVENT = "null_event"  # a tombstone on the events topic
    BAD_TOMBSTONE_KEY = "bad_tombstone_key"
    ENVELOPE_FIELD = "envelope_field"  # an envelope field missing or of the wrong JSON type
    SCHEMA_VERSION = "schema_version"
    WRONG_TENANT = "wrong_tenant"
    BLANK_ID = "blank_id"  # message_id or customer_id empty
    KEY_MISMATCH = "key_mismatch"  # customer_id is not the Kafka key
    TIME_WITHOUT_ZONE = "time_without_zone"
    BAD_TIME = "bad_time"  # not RFC 3339, or outside the years 1 to 9999
    WRONG_TYPE = "wrong_type"  # a message type on the wrong topic, or blank
    REPEATED_FIELD = "repeated_field"
    BAD_DATA = "bad_data"  # data that is no object of distinct fields
    BAD_VALUE = "bad_value"  # a value of the wrong type or outside its allowed values
    OUT_OF_RANGE = "out_of_range"  # a value its column cannot hold
    REFUSED = "refused"  # the warehouse refused it (load.REFUSED_CONTENT)


def _problem(code: QuarantineReason, detail: pl.Expr | str) -> pl.Expr:
    """A quarantine reason: its code and its detail, as one struct."""
    detail = pl.lit(detail) if isinstance(detail, str) else detail
    return pl.struct(pl.lit(code.value).alias("reason_code"), detail.alias("reason"))


_NO_PROBLEM = pl.lit(None, pl.Struct({"reason_code": pl.String, "reason": pl.String}))


@dataclass(frozen=True)
class ParsedBatch:
    messages: pl.DataFrame  # valid envelopes (VALID_MESSAGE_SCHEMA)
    fields: pl.DataFrame  # their data entries (FIELD_SCHEMA), by (partition, offset)
    tombstones: pl.DataFrame  # customer_id, kafka_ts, partition, offset
    quarantined: pl.DataFrame  # QUARANTINE_SCHEMA


def scratch_database() -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB for `shred`, to reuse from batch to batch: a new one
    per batch cost a 1M load about 2 s of CPU, setting up and faulting in its
    memory again. One thread: the parse runs beside the load, which keeps the
    other core busy; a second thread here only contended with it."""
    db = duckdb.connect()
    db.execute("SET threads = 1").fetchall()
    db.execute("SET TimeZone = 'UTC'").fetchall()
    db.execute("CREATE TEMP TABLE timestamp_fields AS SELECT unnest(?::VARCHAR[]) AS field", [_TIMESTAMP_FIELDS])
    return db


def shred(raw: pa.Table, scratch: duckdb.DuckDBPyConnection | None = None) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The envelope of each raw message, and the entries of each `data` object.
    `scratch`: a `scratch_database()` to use, not used by another thread meanwhile."""
    if scratch is None:
        with scratch_database() as db:
            return shred(raw, db)
    scratch.register("raw_batch", raw)
    try:
        shredded = scratch.sql(sql_text("shred_messages.sql")).to_arrow_table()
        scratch.register("shredded", shredded)
        fields = scratch.sql(sql_text("shred_fields.sql")).to_arrow_table()
    finally:
        # Not holding on to the batch after it is parsed.
        for view in ("raw_batch", "shredded"):
            scratch.unregister(view)
    return pl.from_arrow(shredded), pl.from_arrow(fields).cast(_SHREDDED_FIELD_SCHEMA)


_R = QuarantineReason


def envelope_problem(kind: TopicKind, tenant_id: str) -> pl.Expr:
    """The first thing wrong with a message's envelope, or null if nothing is."""
    if kind is TopicKind.PROFILES:
        # A tombstone's key is all it says: the customer to erase.
        key_text = pl.col("key_text")
        expr = pl.when(pl.col("is_null") & (key_text.is_null() | (key_text == ""))).then(
            _problem(_R.BAD_TOMBSTONE_KEY, "tombstone key is not a UTF-8 customer id")
        ).when(pl.col("is_null")).then(_NO_PROBLEM)
    else:
        expr = pl.when(pl.col("is_null")).then(_problem(_R.NULL_EVENT, "null value on the events topic"))
    expr = expr.when(~pl.col("is_text")).then(_problem(_R.NOT_TEXT, "value is not UTF-8 text"))
    expr = expr.when(~pl.col("is_object")).then(_problem(_R.NOT_AN_OBJECT, "value is not a JSON object"))
    for field, types in _ENVELOPE_TYPES.items():
        json_type = pl.col(f"{field}_type")
        expr = expr.when(json_type.is_null()).then(_problem(_R.ENVELOPE_FIELD, f"envelope field {field} is missing"))
        expr = expr.when(~json_type.is_in(types)).then(_problem(
            _R.ENVELOPE_FIELD,
            pl.format(f"envelope field {field} is {{}}, not {types[0].lower()}", json_type.str.to_lowercase()),
        ))
    expr = expr.when(pl.col("schema_version") != str(SCHEMA_VERSION)).then(
        _problem(_R.SCHEMA_VERSION, pl.format("unsupported schema_version {}", pl.col("schema_version")))
    )
    expr = expr.when(pl.col("tenant_id") != tenant_id).then(_problem(
        _R.WRONG_TENANT,
        pl.format(f"tenant_id '{{}}' differs from the integration tenant '{tenant_id}'", pl.col("tenant_id")),
    ))
    for field in ("message_id", "customer_id"):
        expr = expr.when(pl.col(field).str.strip_chars().str.len_chars() == 0).then(
            _problem(_R.BLANK_ID, f"{field} is empty or blank")
        )
    # The key decides the partition and what an erasure removes: a message must be
    # about the customer it is keyed by (a key that is not UTF-8 is no customer id).
    expr = expr.when(pl.col("customer_id").ne_missing(pl.col("key_text"))).then(
        _problem(_R.KEY_MISMATCH, "customer_id differs from the message key")
    )
    occurred = pl.col("occurred_at_text")
    expr = expr.when(occurred.str.contains(_RFC3339_LOCAL + "$")).then(
        _problem(_R.TIME_WITHOUT_ZONE, pl.format("occurred_at '{}' has no zone offset", occurred))
    )
    expr = expr.when(~occurred.str.contains(_RFC3339) | pl.col("occurred_at").is_null()).then(
        _problem(_R.BAD_TIME, pl.format("occurred_at '{}' is not an RFC 3339 time", occurred))
    )
    expr = expr.when(~_instant_held("occurred_at")).then(
        _problem(_R.BAD_TIME, pl.format("occurred_at '{}' is outside the years 1 to 9999 (UTC)", occurred))
    )
    if kind is TopicKind.PROFILES:
        expr = expr.when(pl.col("type") != PROFILE_MESSAGE_TYPE).then(
            _problem(_R.WRONG_TYPE, pl.format("type '{}' on the profiles topic", pl.col("type")))
        )
    else:
        expr = expr.when(pl.col("type") == PROFILE_MESSAGE_TYPE).then(
            _problem(_R.WRONG_TYPE, "type 'profile' on the events topic")
        )
        expr = expr.when(pl.col("type").str.strip_chars().str.len_chars() == 0).then(
            _problem(_R.WRONG_TYPE, "type is empty or blank")
        )
    return expr.otherwise(_NO_PROBLEM)


def _instant_held(column: str) -> pl.Expr:
    """Whether an instant lies where both the warehouse and Python hold it (the
    years 1 to 9999, UTC)."""
    return pl.col(column).is_between(PYTHON_MIN_INSTANT, PYTHON_MAX_INSTANT)


def _field_rules() -> pl.DataFrame:
    """One row per field the contract types: its type, closed values and range."""
    return pl.DataFrame(
        {
            "field": [s.name for s in _FIELD_SPECS],
            "kind": [s.type.value for s in _FIELD_SPECS],
            "allowed": [list(s.allowed) if s.allowed else None for s in _FIELD_SPECS],
            "min_value": [s.min_value for s in _FIELD_SPECS],
            "max_value": [s.max_value for s in _FIELD_SPECS],
            "column_type": [s.type.duckdb_type for s in _FIELD_SPECS],
            "expected": [
                f"one of {', '.join(s.allowed)}" if s.allowed
                else f"an integer from {s.min_value} to {s.max_value}" if s.min_value is not None
                else _EXPECTED[s.type]
                for s in _FIELD_SPECS
            ],
        },
        schema={
            "field": pl.String, "kind": pl.String, "allowed": pl.List(pl.String),
            "min_value": pl.Int64, "max_value": pl.Int64, "column_type": pl.String, "expected": pl.String,
        },
    )


def _value_of(*kinds: AttributeType) -> pl.Expr:
    """The value where the field is of one of `kinds`, else null: polars computes
    every branch of a when/then for every row, and parsing only these values saves
    parsing the other millions."""
    return pl.when(pl.col("kind").is_in([k.value for k in kinds])).then(pl.col("value"))


def _fits_kind() -> pl.Expr:
    t, value, kind = pl.col("json_type"), pl.col("value"), pl.col("kind")
    number = _value_of(AttributeType.INTEGER, AttributeType.DECIMAL).cast(pl.Float64, strict=False)
    return (
        pl.when(t == "NULL").then(True)  # null clears the attribute
        .when(kind == AttributeType.STRING.value).then(t == "VARCHAR")
        .when(kind == AttributeType.DATE.value).then(
            (t == "VARCHAR") & value.str.contains(r"^\d{4}-\d{2}-\d{2}$") & ~value.str.starts_with("0000")
            & _value_of(AttributeType.DATE).str.to_date("%Y-%m-%d", strict=False).is_not_null()
        )
        .when(kind == AttributeType.TIMESTAMP.value).then(
            (t == "VARCHAR") & value.str.contains(_RFC3339) & _instant_held("instant")
        )
        .when(kind == AttributeType.INTEGER.value).then(t.is_in(_INTEGER_TYPES))
        .when(kind == AttributeType.DECIMAL.value).then(t.is_in(_NUMBER_TYPES))
        .when(kind == AttributeType.BOOLEAN.value).then(t == "BOOLEAN")
        .when(kind == AttributeType.STRING_LIST.value).then(t == "ARRAY")
        .otherwise(True)  # an unknown field: any type is an attribute's first value
        & (pl.col("allowed").is_null() | (t == "NULL") | pl.col("allowed").list.contains(value))
        & (pl.col("min_value").is_null() | (t == "NULL") | number.is_between(pl.col("min_value"), pl.col("max_value")))
    )


def _past_column_range() -> pl.Expr:
    """A number the warehouse column (BIGINT, DECIMAL(18,4)) cannot hold: loaded,
    it would fail its whole batch."""
    integer = _value_of(AttributeType.INTEGER).cast(pl.Int64, strict=False)
    decimal = _value_of(AttributeType.DECIMAL).cast(pl.Float64, strict=False)
    return (pl.col("json_type") != "NULL") & (
        ((pl.col("kind") == AttributeType.INTEGER.value) & integer.is_null())
        | ((pl.col("kind") == AttributeType.DECIMAL.value) & ~(decimal.abs() < DECIMAL_LIMIT))
    )


def field_problems(fields: pl.LazyFrame) -> pl.LazyFrame:
    """Per (partition, offset), the first field whose name is repeated or whose value
    does not fit its declared type or its warehouse column."""
    problem = (
        pl.when(pl.col("repeated")).then(
            _problem(_R.REPEATED_FIELD, pl.format("data has the field {} more than once", "field"))
        )
        .when(pl.col("json_type").is_null()).then(
            _problem(_R.BAD_DATA, "data cannot be read as an object of distinct fields")
        )
        .when(~pl.col("fits")).then(_problem(_R.BAD_VALUE, pl.format("{} '{}' is not {}", "field", "value", "expected")))
        .otherwise(
            _problem(_R.OUT_OF_RANGE, pl.format("{} '{}' is out of range for {}", "field", "value", "column_type"))
        )
    )
    return (
        fields.join(_field_rules().lazy(), on="field", how="left")
        .with_columns(fits=_fits_kind())
        .filter(pl.col("repeated") | pl.col("json_type").is_null() | ~pl.col("fits") | _past_column_range())
        .group_by("partition", "offset")
        .agg(problem.sort_by(~pl.col("repeated"), "field").first().alias("field_problem"))
    )


def parse_raw_batch(
    raw: pa.Table, kind: TopicKind, tenant_id: str, scratch: duckdb.DuckDBPyConnection | None = None
) -> ParsedBatch:
    shredded, fields = shred(raw, scratch)
    checked = (
        shredded.lazy()
        .with_columns(problem=envelope_problem(kind, tenant_id))
        .join(field_problems(fields.lazy()), on=["partition", "offset"], how="left")
        .with_columns(pl.coalesce("problem", "field_problem").struct.unnest())
        .collect()
    )
    valid = checked.filter(pl.col("reason").is_null() & ~pl.col("is_null"))
    messages = valid.select(VALID_MESSAGE_SCHEMA.names()).cast(VALID_MESSAGE_SCHEMA)
    tombstones = checked.filter(pl.col("is_null") & pl.col("reason").is_null()).select(
        pl.col("key_text").alias("customer_id"), "kafka_ts", "partition", "offset"
    )
    quarantined = checked.filter(pl.col("reason").is_not_null()).select(
        "topic", "partition", "offset", "kafka_ts", "key_text", "reason_code", "reason"
    )
    if quarantined.height:
        # (partition, offset) is unique in a raw batch, which holds one topic.
        untouched = pl.from_arrow(raw.select(["partition", "offset", "key", "value"])).rename({"value": "raw_value"})
        quarantined = quarantined.join(untouched, on=["partition", "offset"], how="left", maintain_order="left")
    else:
        quarantined = quarantined.with_columns(key=pl.lit(None, pl.Binary), raw_value=pl.lit(None, pl.Binary))
    quarantined = quarantined.select(QUARANTINE_SCHEMA.names()).cast(QUARANTINE_SCHEMA)
    return ParsedBatch(
        messages=messages,
        # Not the fields of quarantined messages (tombstones have none): an anti join
        # on the few quarantined costs a sixth of a semi join on the many valid.
        fields=fields.join(quarantined.select("partition", "offset"), on=["partition", "offset"], how="anti").select(
            FIELD_SCHEMA.names()
        ),
        tombstones=tombstones,
        quarantined=quarantined,
    )
