-- One row per raw message of `raw_batch`: the envelope's fields as text with
-- their JSON types, so validation can say exactly what is wrong. Runs in an
-- in-memory DuckDB, not the warehouse (parse.scratch_database()).
--
-- No TRY() around a parse: once one row of a vector fails, TRY re-runs the whole
-- vector row by row, many times slower. json_valid guards the parses instead.
WITH decoded AS (
    -- The one TRY left: DuckDB has no test for UTF-8 that does not fail itself.
    SELECT *, TRY(decode(value)) AS text FROM raw_batch
), parsed AS (
    -- One parse of each document for the envelope: each field as JSON text (a
    -- string still quoted), NULL when it is missing or null; all of them NULL
    -- when the document is no object.
    SELECT *, json_valid(text) AS is_json,
        CASE WHEN is_json THEN json_transform(text, '{"schema_version": "JSON", "message_id": "JSON",
            "tenant_id": "JSON", "customer_id": "JSON", "type": "JSON", "occurred_at": "JSON", "data": "JSON"}') END AS e
    FROM decoded
), sorted AS (
    -- The usual message: the schema version it must have, strings without an
    -- escape (their text is what is between the quotes) and data an object. Its
    -- JSON types are known; only the others are asked for theirs, by a parse each.
    SELECT *, coalesce(
        $quick_path AND e.schema_version = $schema_version
        AND quoted_plain(e.message_id) AND quoted_plain(e.tenant_id) AND quoted_plain(e.customer_id)
        AND quoted_plain(e."type") AND quoted_plain(e.occurred_at) AND starts_with(e.data, '{'), false) AS usual
    FROM parsed
), exact AS (
    -- A path into anything but an object has no type.
    SELECT *,
        CASE WHEN is_json AND NOT usual THEN json_type(text, ['$', '$.schema_version', '$.message_id', '$.tenant_id', '$.customer_id', '$.type', '$.occurred_at', '$.data']) END AS types,
        CASE WHEN types[1] = 'OBJECT' THEN json_extract_string(text, ['$.schema_version', '$.message_id', '$.tenant_id', '$.customer_id', '$.type', '$.occurred_at', '$.data']) END AS v
    FROM sorted
)
SELECT
    -- Not the raw key and value: only quarantined rows need them, taken from
    -- the raw batch by position (copying them out of DuckDB costs more).
    topic, "partition", "offset", "timestamp" AS kafka_ts,
    TRY(decode(key)) AS key_text,  -- null when the key is not UTF-8
    value IS NULL AS is_null,
    text IS NOT NULL AS is_text,
    usual OR coalesce(types[1] = 'OBJECT', false) AS is_object,
    -- A string unquoted, a number or object as JSON text; JSON null is NULL.
    -- (Not a list per row, which costs more to build than the values in it.)
    CASE WHEN usual THEN 'UBIGINT' ELSE types[2] END AS schema_version_type,
    CASE WHEN usual THEN e.schema_version::VARCHAR ELSE v[1] END AS schema_version,
    CASE WHEN usual THEN 'VARCHAR' ELSE types[3] END AS message_id_type,
    CASE WHEN usual THEN e.message_id[2:-2] ELSE v[2] END AS message_id,
    CASE WHEN usual THEN 'VARCHAR' ELSE types[4] END AS tenant_id_type,
    CASE WHEN usual THEN e.tenant_id[2:-2] ELSE v[3] END AS tenant_id,
    CASE WHEN usual THEN 'VARCHAR' ELSE types[5] END AS customer_id_type,
    CASE WHEN usual THEN e.customer_id[2:-2] ELSE v[4] END AS customer_id,
    CASE WHEN usual THEN 'VARCHAR' ELSE types[6] END AS type_type,
    CASE WHEN usual THEN e."type"[2:-2] ELSE v[5] END AS "type",
    CASE WHEN usual THEN 'VARCHAR' ELSE types[7] END AS occurred_at_type,
    CASE WHEN usual THEN e.occurred_at[2:-2] ELSE v[6] END AS occurred_at_text,
    -- The instant it names (parse_macros.sql), so a time that passes validation
    -- loads; the format is checked apart.
    instant_of(occurred_at_text) AS occurred_at,
    CASE WHEN usual THEN 'OBJECT' ELSE types[8] END AS data_type,
    CASE WHEN usual THEN e.data::VARCHAR ELSE v[7] END AS data  -- only read where data_type is OBJECT
FROM exact
