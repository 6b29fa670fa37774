"""The set-based steps of loading a chunk: each one DuckDB statement over all
of the chunk's messages, reading relations by name and making a temp table or
a view by name.

They run where the chunk loads, so what they make never leaves DuckDB: no copy
to polars and back. Their inputs: `chunk_messages` (ParsedBatch.messages with
a `batch` column and each message's position, `row`), `chunk_fields`
(ParsedBatch.fields), `erased_customer_ids` (customer_id) and `chunk_integration`
(integration: the one integration loading); the profile and subscription
steps read the attribute state their docstrings name.
"""

from __future__ import annotations

from typing import Collection, Mapping

import duckdb
import polars as pl

from gig_etl.contract import EVENT_TYPES, PROFILE_ATTRIBUTES, SUBSCRIPTION_CHANNELS, TopicKind, attribute_column
from gig_etl.lib.identifiers import EXTRA_ATTRIBUTES, quote_identifier
from gig_etl.lib.transform import NEWEST_LAST

# NEWEST_LAST as SQL, in polars' order (NULLS FIRST): what compares equal there ties here.
_NEWEST_LAST_SQL = ", ".join(f"{quote_identifier(c)} NULLS FIRST" for c in NEWEST_LAST)


def _run(db: duckdb.DuckDBPyConnection, query: str, params: list | None = None) -> None:
    db.execute(query, params or []).fetchall()


# Each step keeps the rows it selects as their positions in `chunk_messages`
# (its `row` column), and reads the rest through a view: a temp table of the
# messages themselves cost 35 ms per 50k rows to write, whatever its width.


def _rows_view(db: duckdb.DuckDBPyConnection, view: str, rows: str) -> None:
    _run(
        db, f"CREATE OR REPLACE TEMP VIEW {view} AS SELECT m.*, r.* EXCLUDE (row) "
        f"FROM {rows} AS r JOIN chunk_messages AS m ON m.row = r.row",
    )


def unique_messages(db: duckdb.DuckDBPyConnection) -> None:
    """`unique_rows` (row, hash_upper, hash_lower): one row per message_id of
    `chunk_messages`, re-sent copies dropped, the first in (partition, offset)
    order kept (copies on two partitions have no arrival order); with the two
    halves of its seen-id hash."""
    _run(
        db,
        # An aggregate per message_id, not a window over them: hashing beats sorting.
        "CREATE OR REPLACE TEMP TABLE unique_rows AS "
        "SELECT row, message_hash_upper(message_id) AS hash_upper, message_hash_lower(message_id) AS hash_lower "
        'FROM (SELECT message_id, arg_min(row, ("partition", "offset")) AS row FROM chunk_messages GROUP BY message_id)',
    )


def new_messages(db: duckdb.DuckDBPyConnection, integration: str) -> None:
    """`seen_copies` (message_id, partition, offset): the unique messages the
    integration has seen before, and `new_messages`: the others, with their hashes."""
    _run(
        db,
        "CREATE OR REPLACE TEMP TABLE seen_rows AS SELECT u.row FROM unique_rows AS u JOIN seen_messages AS s "
        "ON s.integration = ? AND s.message_hash_upper = u.hash_upper AND s.message_hash_lower = u.hash_lower",
        [integration],
    )
    _run(db, "CREATE OR REPLACE TEMP TABLE new_rows AS SELECT * FROM unique_rows ANTI JOIN seen_rows USING (row)")
    _run(
        db, 'CREATE OR REPLACE TEMP VIEW seen_copies AS SELECT m.message_id, m."partition", m."offset" '
        "FROM seen_rows AS r JOIN chunk_messages AS m ON m.row = r.row",
    )
    _rows_view(db, "new_messages", "new_rows")


def kept_messages(db: duckdb.DuckDBPyConnection) -> None:
    """`kept_messages`: the new messages but those about erased customers
    (`erased_customer_ids`): an erased customer stays erased, whatever arrives
    about them later (GiG does not reuse customer ids)."""
    _run(
        db,
        "CREATE OR REPLACE TEMP TABLE kept_rows AS SELECT row FROM new_messages AS m "
        "WHERE NOT EXISTS (SELECT 1 FROM erased_customer_ids AS e WHERE e.customer_id = m.customer_id)",
    )
    _rows_view(db, "kept_messages", "kept_rows")


def message_counts(db: duckdb.DuckDBPyConnection) -> tuple[int, int, int]:
    """How many of the chunk's messages are new, kept, and seen before (once each)."""
    [counts] = db.execute(
        "SELECT (SELECT count(*) FROM new_rows), (SELECT count(*) FROM kept_rows), (SELECT count(*) FROM seen_rows)"
    ).fetchall()
    return counts


def contract_attribute_names(db: duckdb.DuckDBPyConnection) -> None:
    """`contract_attribute_names` (field): the profile attributes the contract
    knows. A table, not a list parameter: list_contains(?, x) made a scan six
    times slower."""
    db.register("contract_attribute_names", pl.DataFrame({"field": sorted(PROFILE_ATTRIBUTES)}).to_arrow())


def observations(db: duckdb.DuckDBPyConnection, kind: TopicKind) -> None:
    """`observations`: every attribute value the kept messages carry: a profile
    change's every field; an event's fields that share a name with a profile
    attribute (GIG_STREAM.md, Events). Each with its message's `newness`: the
    newer of two values has the higher (one integer compares faster than four
    columns)."""
    only_attributes = ""
    if kind is TopicKind.EVENTS:
        contract_attribute_names(db)
        only_attributes = "WHERE f.field IN (SELECT field FROM contract_attribute_names)"
    _run(
        db,
        "CREATE OR REPLACE TEMP VIEW observations AS "
        'WITH ranked AS (SELECT "partition", "offset", customer_id, occurred_at, kafka_ts, '
        f"row_number() OVER (ORDER BY {_NEWEST_LAST_SQL}) AS newness FROM kept_messages) "
        "SELECT r.customer_id, f.field AS attribute, f.json_type, f.value, r.occurred_at, r.kafka_ts, "
        'r."partition", r."offset", r.newness '
        f'FROM chunk_fields AS f JOIN ranked AS r ON r."partition" = f."partition" AND r."offset" = f."offset" '
        f"{only_attributes}",
    )


def unknown_observations(db: duckdb.DuckDBPyConnection, kind: TopicKind) -> str:
    """A query of the observations of attributes the contract does not know
    (attribute, json_type, value, occurred_at): straight from the fields, since
    they need no ranking. Events observe none."""
    if kind is TopicKind.EVENTS:
        return "SELECT attribute, json_type, value, occurred_at FROM observations LIMIT 0"
    contract_attribute_names(db)
    return (
        "SELECT f.field AS attribute, f.json_type, f.value, m.occurred_at FROM chunk_fields AS f "
        'JOIN kept_messages AS m ON m."partition" = f."partition" AND m."offset" = f."offset" '
        "WHERE f.field NOT IN (SELECT field FROM contract_attribute_names)"
    )


def newest_values(db: duckdb.DuckDBPyConnection) -> None:
    """`newest_values`: the newest observation of each (customer, attribute)."""
    _run(
        db,
        "CREATE OR REPLACE TEMP VIEW newest_values AS SELECT i.integration, o.* FROM ("
        "SELECT o.customer_id, o.attribute, unnest(arg_max({'json_type': o.json_type, 'value': o.value, "
        "'occurred_at': o.occurred_at, 'kafka_ts': o.kafka_ts, 'partition': o.\"partition\", 'offset': o.\"offset\", "
        "'newness': o.newness}, o.newness)) FROM observations AS o GROUP BY o.customer_id, o.attribute"
        ") AS o, chunk_integration AS i",
    )


def new_events(db: duckdb.DuckDBPyConnection) -> None:
    """`new_events`: `events` rows of the kept messages, each with the profile_id
    its customer has in `chunk_profile_ids` (customer_id, profile_id). An unknown
    event type is still an event, named after its type."""
    db.register("event_names", pl.DataFrame(
        {"event_type": list(EVENT_TYPES), "event_name": [e.display_name for e in EVENT_TYPES.values()]}
    ).to_arrow())
    _run(
        db,
        "CREATE OR REPLACE TEMP VIEW new_events AS SELECT i.integration, m.message_id AS event_id, "
        "m.type AS event_type, coalesce(n.event_name, m.type) AS event_name, m.customer_id, m.occurred_at, "
        'm.data AS properties, m.topic, m."partition" AS kafka_partition, m."offset" AS kafka_offset, p.profile_id '
        "FROM chunk_integration AS i, kept_messages AS m LEFT JOIN event_names AS n ON n.event_type = m.type "
        "LEFT JOIN chunk_profile_ids AS p ON p.customer_id = m.customer_id",
    )


def _typed_value(value: str, column: str, data_type: str) -> str:
    """SQL for a `profiles` column from its `value` (SQL for the text it holds), in
    the column's type (`data_type` as DuckDB names it in duckdb_columns())."""
    if data_type.endswith("[]") or data_type == "JSON":
        typed = f"CAST(({value})::JSON AS {data_type})"
    elif data_type == "TIMESTAMP WITH TIME ZONE":  # DuckDB reads T and Z, not the t and z RFC 3339 allows too
        typed = f"CAST(upper({value}) AS {data_type})"
    else:
        typed = f"CAST({value} AS {data_type})"
    return f"{typed} AS {quote_identifier(column)}"


def refreshed_profiles(
    db: duckdb.DuckDBPyConnection, identifier: str, columns: Mapping[str, tuple[str, str]], extra: Collection[str] = ()
) -> None:
    """`refreshed_profiles`: the `profiles` rows of the customers in
    `profile_state` (customer_id, attribute, value, occurred_at: their every
    attribute value now), one per customer whose identifier is known, others
    held back until it arrives. `columns` maps each gig_ column to the GiG name
    whose value it holds and the column's type; the values of the names in
    `extra` go into EXTRA_ATTRIBUTES, null if none."""
    # Each customer's values as one list, each column's found by its position
    # there: a filtered aggregate per column compared every value with every name.
    db.register("profile_column_names", pl.DataFrame(
        {"attribute": [name for name, _ in columns.values()], "place": range(1, len(columns) + 1)},
        schema={"attribute": pl.String, "place": pl.Int32},
    ).to_arrow())
    lists, params = ["list({'place': n.place, 'value': s.value}) AS placed"], []
    typed = [
        _typed_value(f"placed[list_position(places, {place})].value", column, data_type)
        for place, (column, (_, data_type)) in enumerate(columns.items(), start=1)
    ]
    if extra:
        lists.append(
            "list({'key': s.attribute, 'value': s.value}) FILTER (WHERE list_contains(?::VARCHAR[], s.attribute)) "
            f"AS {EXTRA_ATTRIBUTES}"
        )
        params.append(sorted(extra))
        typed.append(f"map_from_entries({EXTRA_ATTRIBUTES}) AS {EXTRA_ATTRIBUTES}")
    identified_by = (
        "customer_id" if identifier == "customer_id"
        else f"placed[list_position(places, {list(columns).index(attribute_column(identifier)) + 1})].value"
    )
    _run(
        db,
        "CREATE OR REPLACE TEMP TABLE refreshed_profiles AS "
        f"SELECT {', '.join(['i.integration', 'w.profile_id', 'w.customer_id', 'w.updated_at', *typed])} "
        f"FROM chunk_integration AS i, (SELECT *, {identified_by} AS profile_id FROM ("
        "SELECT *, [p.place FOR p IN placed] AS places FROM ("
        f"SELECT {', '.join(['s.customer_id', 'max(s.occurred_at) AS updated_at', *lists])} "
        "FROM profile_state AS s LEFT JOIN profile_column_names AS n ON n.attribute = s.attribute "
        "GROUP BY s.customer_id))) AS w "
        "WHERE w.profile_id IS NOT NULL",
        params,
    )


def refreshed_subscriptions(db: duckdb.DuckDBPyConnection) -> None:
    """`refreshed_subscriptions`: the channel subscriptions of the profiles in
    `subscription_holders` (integration, customer_id, profile_id: every customer
    of each), from the subscription attributes in `subscription_state` (as
    `profile_state`). Customers who share an identifier share a profile, whose
    channel then takes the newest value among them."""
    db.register("subscription_channels", pl.DataFrame(
        {"attribute": list(SUBSCRIPTION_CHANNELS), "channel": list(SUBSCRIPTION_CHANNELS.values())}
    ).to_arrow())
    newest_first = ", ".join(f"s.{quote_identifier(c)} DESC NULLS LAST" for c in NEWEST_LAST)
    _run(
        db,
        "CREATE OR REPLACE TEMP TABLE refreshed_subscriptions AS "
        "SELECT h.integration, h.profile_id, c.channel, s.value = 'true' AS subscribed, "  # null: cleared, unknown
        "s.occurred_at AS updated_at "
        "FROM subscription_state AS s JOIN subscription_channels AS c ON c.attribute = s.attribute "
        "JOIN subscription_holders AS h ON h.customer_id = s.customer_id "
        f"QUALIFY row_number() OVER (PARTITION BY h.profile_id, s.attribute ORDER BY {newest_first}) = 1",
    )
