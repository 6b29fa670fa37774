-- One row per raw message of `raw_batch`: the envelope's fields as text with
-- their JSON types, so validation can say exactly what is wrong. Runs in an
-- in-memory DuckDB, not the warehouse (parse.scratch_database()).
WITH decoded AS (
    SELECT *, TRY(decode(value)) AS text FROM raw_batch
), typed AS (
    -- One parse of each document for its own type and the envelope's seven:
    -- TRY, since json_type fails on invalid JSON (AND does not short-circuit row
    -- by row); a path into anything but an object has no type.
    SELECT *, TRY(json_type(text, ['$', '$.schema_version', '$.message_id', '$.tenant_id', '$.customer_id', '$.type', '$.occurred_at', '$.data'])) AS types
    FROM decoded
), parsed AS (
    SELECT *, coalesce(types[1] = 'OBJECT', false) AS is_object, types[2:] AS t FROM typed
), envelope AS (
    -- And one for the seven values. Asking each extracted value for its type and
    -- text parsed every one again (a quarter more CPU); asking the document for
    -- its own type in a parse of its own, a tenth more.
    SELECT *,
        CASE WHEN is_object THEN json_extract_string(text, ['$.schema_version', '$.message_id', '$.tenant_id', '$.customer_id', '$.type', '$.occurred_at', '$.data']) END AS v
    FROM parsed
)
SELECT
    -- Not the raw key and value: only quarantined rows need them, taken from
    -- the raw batch by position (copying them out of DuckDB costs more).
    topic, "partition", "offset", "timestamp" AS kafka_ts,
    TRY(decode(key)) AS key_text,  -- null when the key is not UTF-8
    value IS NULL AS is_null,
    text IS NOT NULL AS is_text,
    is_object,
    -- A string unquoted, a number or object as JSON text; JSON null is NULL.
    t[1] AS schema_version_type, v[1] AS schema_version,
    t[2] AS message_id_type,     v[2] AS message_id,
    t[3] AS tenant_id_type,      v[3] AS tenant_id,
    t[4] AS customer_id_type,    v[4] AS customer_id,
    t[5] AS type_type,           v[5] AS "type",
    t[6] AS occurred_at_type,    v[6] AS occurred_at_text,
    -- The instant it names (parse_macros.sql), so a time that passes validation
    -- loads; the format is checked apart.
    instant_of(v[6]) AS occurred_at,
    t[7] AS data_type,           v[7] AS data  -- only read where data_type is OBJECT
FROM envelope
