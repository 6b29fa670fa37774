"""Raw Kafka messages to validated envelopes and fields, or quarantine with a reason.

All of it is SQL in an in-memory DuckDB (`scratch_database()`): the shred of
the JSON (`sql/shred_*.sql`), then the checks below, which read their rules
from `gig_etl.contract`. Only its results leave DuckDB, as polars frames.
"""

from __future__ import annotations

from dataclasses import dataclass
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
from gig_etl.lib.identifiers import quote_identifier, string_literal
from gig_etl.lib.warehouse import sql_text

_NUMBER_TYPES = ("UBIGINT", "BIGINT", "HUGEINT", "DOUBLE")
_INTEGER_TYPES = ("UBIGINT", "BIGINT", "HUGEINT")

# The envelope's fields and the JSON types they must have.
_ENVELOPE_TYPES = {
    "schema_version": _INTEGER_TYPES,
    "message_id": ("VARCHAR",),
    "tenant_id": ("VARCHAR",),
    "customer_id": ("VARCHAR",),
    "type": ("VARCHAR",),
    "occurred_at": ("VARCHAR",),
    "data": ("OBJECT",),
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
# Every field the contract types: profile attributes, then event fields.
_FIELD_SPECS = (*PROFILE_ATTRIBUTES.values(), *EVENT_FIELDS.values())


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



@dataclass(frozen=True)
class ParsedBatch:
    messages: pl.DataFrame  # valid envelopes (VALID_MESSAGE_SCHEMA)
    fields: pl.DataFrame  # their data entries (FIELD_SCHEMA), by (partition, offset)
    tombstones: pl.DataFrame  # customer_id, kafka_ts, partition, offset
    quarantined: pl.DataFrame  # QUARANTINE_SCHEMA


_R = QuarantineReason


def _problem(code: QuarantineReason, detail: str) -> str:
    """SQL for a quarantine reason: `code` and `detail` (SQL for its text)."""
    return f"problem({string_literal(code.value)}, {detail})"


def _format(template: str, *values: str) -> str:
    """SQL for `template` (text of ours, with a {} per value) filled with the SQL `values`."""
    return f"format({string_literal(template)}, {', '.join(values)})"


def _first_of(checks: list[tuple[str, str]]) -> str:
    """SQL for the problem of the first check (condition, problem) that holds,
    NULL if none does."""
    return "CASE " + " ".join(f"WHEN {condition} THEN {problem}" for condition, problem in checks) + " END"


def envelope_problem(kind: TopicKind) -> str:
    """SQL for the first thing wrong with a message's envelope (a row of
    shred_messages.sql), NULL if nothing is; `$tenant_id` is the integration's."""
    text = string_literal
    checks: list[tuple[str, str]] = []
    if kind is TopicKind.PROFILES:
        # A tombstone's key is all it says: the customer to erase.
        checks += [
            ("is_null AND coalesce(key_text, '') = ''",
             _problem(_R.BAD_TOMBSTONE_KEY, text("tombstone key is not a UTF-8 customer id"))),
            ("is_null", "NULL"),
        ]
    else:
        checks.append(("is_null", _problem(_R.NULL_EVENT, text("null value on the events topic"))))
    checks += [
        ("NOT is_text", _problem(_R.NOT_TEXT, text("value is not UTF-8 text"))),
        ("NOT is_object", _problem(_R.NOT_AN_OBJECT, text("value is not a JSON object"))),
    ]
    for field, types in _ENVELOPE_TYPES.items():
        json_type = quote_identifier(f"{field}_type")
        checks += [
            (f"{json_type} IS NULL", _problem(_R.ENVELOPE_FIELD, text(f"envelope field {field} is missing"))),
            (f"{json_type} NOT IN ({', '.join(map(text, types))})", _problem(
                _R.ENVELOPE_FIELD,
                _format(f"envelope field {field} is {{}}, not {types[0].lower()}", f"lower({json_type})"),
            )),
        ]
    checks += [
        (f"schema_version <> {text(str(SCHEMA_VERSION))}",
         _problem(_R.SCHEMA_VERSION, _format("unsupported schema_version {}", "schema_version"))),
        ("tenant_id <> $tenant_id", _problem(
            _R.WRONG_TENANT,
            _format("tenant_id '{}' differs from the integration tenant '{}'", "tenant_id", "$tenant_id"),
        )),
        ("blank(message_id)", _problem(_R.BLANK_ID, text("message_id is empty or blank"))),
        ("blank(customer_id)", _problem(_R.BLANK_ID, text("customer_id is empty or blank"))),
        # The key decides the partition and what an erasure removes: a message must be
        # about the customer it is keyed by (a key that is not UTF-8 is no customer id).
        ("customer_id IS DISTINCT FROM key_text",
         _problem(_R.KEY_MISMATCH, text("customer_id differs from the message key"))),
        ("rfc3339_without_zone(occurred_at_text)",
         _problem(_R.TIME_WITHOUT_ZONE, _format("occurred_at '{}' has no zone offset", "occurred_at_text"))),
        ("NOT rfc3339(occurred_at_text) OR occurred_at IS NULL",
         _problem(_R.BAD_TIME, _format("occurred_at '{}' is not an RFC 3339 time", "occurred_at_text"))),
        ("NOT instant_held(occurred_at)", _problem(
            _R.BAD_TIME, _format("occurred_at '{}' is outside the years 1 to 9999 (UTC)", "occurred_at_text")
        )),
    ]
    profile_type = text(PROFILE_MESSAGE_TYPE)
    if kind is TopicKind.PROFILES:
        checks.append((
            f'"type" <> {profile_type}', _problem(_R.WRONG_TYPE, _format("type '{}' on the profiles topic", '"type"'))
        ))
    else:
        checks += [
            (f'"type" = {profile_type}',
             _problem(_R.WRONG_TYPE, text(f"type '{PROFILE_MESSAGE_TYPE}' on the events topic"))),
            ('blank("type")', _problem(_R.WRONG_TYPE, text("type is empty or blank"))),
        ]
    return _first_of(checks)


_EXPECTED = {
    AttributeType.STRING: "a string",
    AttributeType.DATE: "a date (YYYY-MM-DD)",
    AttributeType.TIMESTAMP: "an RFC 3339 time with a zone",
    AttributeType.INTEGER: "an integer",
    AttributeType.DECIMAL: "a decimal number",
    AttributeType.BOOLEAN: "a boolean",
    AttributeType.STRING_LIST: "a list of strings",
}


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


def _is_kind(*kinds: AttributeType) -> str:
    return f"kind IN ({', '.join(string_literal(k.value) for k in kinds)})"


def _types(types: tuple[str, ...]) -> str:
    return f"json_type IN ({', '.join(map(string_literal, types))})"


def field_problem() -> str:
    """SQL for what is wrong with a field (a row of shred_fields.sql with its
    rule from `field_rules`, none for a field the contract does not type), NULL
    if nothing is. A name twice in one object is found apart (`_FIELD_PROBLEMS`)."""
    k = AttributeType
    # CASE evaluates a branch only for the rows that reach it: each value is
    # parsed as its own kind only.
    fits_kind = _first_of([
        ("json_type = 'NULL'", "true"),  # null clears the attribute
        (_is_kind(k.STRING), "json_type = 'VARCHAR'"),
        (_is_kind(k.DATE), "json_type = 'VARCHAR' AND iso_date(value) "
                           "AND NOT starts_with(value, '0000') AND TRY_CAST(value AS DATE) IS NOT NULL"),
        (_is_kind(k.TIMESTAMP), "json_type = 'VARCHAR' AND rfc3339(value) AND instant_held(instant_of(value))"),
        (_is_kind(k.INTEGER), _types(_INTEGER_TYPES)),
        (_is_kind(k.DECIMAL), _types(_NUMBER_TYPES)),
        (_is_kind(k.BOOLEAN), "json_type = 'BOOLEAN'"),
        (_is_kind(k.STRING_LIST), "json_type = 'ARRAY'"),
        ("true", "true"),  # an unknown field: any type is an attribute's first value
    ])
    number = f"CASE WHEN {_is_kind(k.INTEGER, k.DECIMAL)} THEN TRY_CAST(value AS DOUBLE) END"
    fits = (
        f"({fits_kind}) AND (allowed IS NULL OR json_type = 'NULL' OR list_contains(allowed, value)) "
        f"AND (min_value IS NULL OR json_type = 'NULL' OR ({number}) BETWEEN min_value AND max_value)"
    )
    # A number the warehouse column (BIGINT, DECIMAL(18,4)) cannot hold: loaded,
    # it would fail its whole batch.
    past_column_range = (
        f"json_type <> 'NULL' AND (({_is_kind(k.INTEGER)} AND TRY_CAST(value AS BIGINT) IS NULL) "
        f"OR ({_is_kind(k.DECIMAL)} AND NOT abs(TRY_CAST(value AS DOUBLE)) < {DECIMAL_LIMIT}))"
    )
    return _first_of([
        ("json_type IS NULL",
         _problem(_R.BAD_DATA, string_literal("data cannot be read as an object of distinct fields"))),
        (f"NOT ({fits})", _problem(_R.BAD_VALUE, _format("{} '{}' is not {}", "field", "value", "expected"))),
        (past_column_range,
         _problem(_R.OUT_OF_RANGE, _format("{} '{}' is out of range for {}", "field", "value", "column_type"))),
    ])


# Per message, the problem of its first field that has one, a repeated name
# first (which value counts?), then by name. Only an object not mapped has a name
# twice (shred_fields.sql): it is counted among its few names.
_FIELD_PROBLEMS = f"""
    WITH flagged AS (
        SELECT * FROM (
            SELECT "partition", "offset", field, json_type, {field_problem()} AS problem
            FROM shredded_fields LEFT JOIN field_rules USING (field)
        ) WHERE problem IS NOT NULL
    )
    SELECT "partition", "offset", arg_min(problem, (NOT repeated, field)) AS problem FROM (
        SELECT "partition", "offset", field, problem, false AS repeated FROM flagged
        UNION ALL
        SELECT "partition", "offset", field,
            {_problem(_R.REPEATED_FIELD, _format("data has the field {} more than once", "field"))}, true
        FROM flagged WHERE json_type IS NULL GROUP BY "partition", "offset", field HAVING count(*) > 1
    )
    GROUP BY "partition", "offset"
"""
# Each message's problem: its envelope's, else its first field's.
_PROBLEMS = f"""
    CREATE OR REPLACE TEMP TABLE problems AS
    SELECT "partition", "offset", arg_min(problem, envelope_first) AS problem FROM (
        SELECT "partition", "offset", problem, 0 AS envelope_first FROM shredded WHERE problem IS NOT NULL
        UNION ALL
        SELECT "partition", "offset", problem, 1 FROM ({_FIELD_PROBLEMS})
    )
    GROUP BY "partition", "offset"
"""
_NOT_QUARANTINED = (
    'NOT EXISTS (SELECT 1 FROM problems AS p WHERE p."partition" = s."partition" AND p."offset" = s."offset")'
)


def scratch_database() -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB for `parse_raw_batch`, to reuse from batch to batch: a
    new one per batch cost a 1M load about 2 s of CPU, setting up and faulting in
    its memory again. One thread: the parse runs beside the load, which keeps the
    other core busy; a second thread here only contended with it."""
    db = duckdb.connect()
    db.execute("SET threads = 1").fetchall()
    db.execute("SET TimeZone = 'UTC'").fetchall()
    db.execute(sql_text("parse_macros.sql")).fetchall()
    db.register("field_rules_rows", _field_rules().to_arrow())
    db.execute("CREATE TEMP TABLE field_rules AS SELECT * FROM field_rules_rows").fetchall()
    db.unregister("field_rules_rows")
    return db


def parse_raw_batch(
    raw: pa.Table, kind: TopicKind, tenant_id: str, scratch: duckdb.DuckDBPyConnection | None = None,
    quick_path: bool = True,
) -> ParsedBatch:
    """The batch's valid messages, their fields and its tombstones, and each
    other message with the first thing wrong with it. `scratch`: a
    `scratch_database()` to use, not used by another thread meanwhile.
    `quick_path=False` reads every envelope the exact way, which the usual
    message's quick way (shred_messages.sql) must agree with."""
    if scratch is None:
        with scratch_database() as db:
            return parse_raw_batch(raw, kind, tenant_id, db, quick_path)
    db = scratch
    db.register("raw_batch", raw)
    try:
        # What the checks need of the envelope, and the first thing wrong with it.
        db.execute(
            'CREATE OR REPLACE TEMP TABLE shredded AS SELECT topic, "partition", "offset", kafka_ts, key_text, is_null, '
            f'message_id, customer_id, "type", occurred_at, data, data_type, {envelope_problem(kind)} AS problem '
            f"FROM ({sql_text('shred_messages.sql')})",
            {"tenant_id": tenant_id, "schema_version": str(SCHEMA_VERSION), "quick_path": quick_path},
        ).fetchall()
        db.execute(f"CREATE OR REPLACE TEMP TABLE shredded_fields AS {sql_text('shred_fields.sql')}").fetchall()
        db.execute(_PROBLEMS).fetchall()

        def rows(query: str, schema: pl.Schema | None = None) -> pl.DataFrame:
            frame = pl.from_arrow(db.execute(query).to_arrow_table())
            return frame.cast(schema) if schema is not None else frame

        messages = rows(
            f"SELECT {', '.join(map(quote_identifier, VALID_MESSAGE_SCHEMA.names()))} FROM shredded AS s "
            f"WHERE NOT is_null AND {_NOT_QUARANTINED}",
            VALID_MESSAGE_SCHEMA,
        )
        fields = rows(
            f'SELECT "partition", "offset", field, json_type, value FROM shredded_fields AS s WHERE {_NOT_QUARANTINED}',
            FIELD_SCHEMA,
        )
        tombstones = rows(
            'SELECT key_text AS customer_id, kafka_ts, "partition", "offset" FROM shredded AS s '
            f"WHERE is_null AND {_NOT_QUARANTINED}",
        )
        # The raw key and value only of the few quarantined: (partition, offset) is
        # unique in a raw batch, which holds one topic.
        quarantined = rows(
            'SELECT s.topic, s."partition", s."offset", s.kafka_ts, r."key", s.key_text, r."value" AS raw_value, '
            "p.problem.reason_code, p.problem.reason FROM problems AS p "
            'JOIN shredded AS s ON s."partition" = p."partition" AND s."offset" = p."offset" '
            'JOIN raw_batch AS r ON r."partition" = p."partition" AND r."offset" = p."offset" '
            'ORDER BY s."partition", s."offset"',
            QUARANTINE_SCHEMA,
        )
    finally:
        # Not holding on to the batch after it is parsed.
        db.unregister("raw_batch")
        for table in ("shredded", "shredded_fields", "problems"):
            db.execute(f"DROP TABLE IF EXISTS {table}").fetchall()
    return ParsedBatch(messages, fields, tombstones, quarantined)
