-- One row per raw message of `raw_batch`: the envelope's fields as text with
-- their JSON types, so validation can say exactly what is wrong. Runs in an
-- in-memory DuckDB, not the warehouse: polars cannot list an object's keys nor
-- decode JSON row by row without failing the whole column on one bad value.
WITH decoded AS (
    SELECT *, TRY(decode(value)) AS text FROM raw_batch
), parsed AS (
    -- TRY: AND does not short-circuit row by row, and json_type fails on invalid JSON.
    SELECT *, coalesce(TRY(json_type(text)) = 'OBJECT', false) AS is_object FROM decoded
), envelope AS (
    -- One parse of each document for all the envelope's fields.
    SELECT *,
        CASE WHEN is_object THEN json_extract(
            text, ['$.schema_version', '$.message_id', '$.tenant_id', '$.customer_id', '$.type', '$.occurred_at', '$.data']
        ) END AS f
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
    json_type(f[1]) AS schema_version_type, f[1]->>'$' AS schema_version,
    json_type(f[2]) AS message_id_type,     f[2]->>'$' AS message_id,
    json_type(f[3]) AS tenant_id_type,      f[3]->>'$' AS tenant_id,
    json_type(f[4]) AS customer_id_type,    f[4]->>'$' AS customer_id,
    json_type(f[5]) AS type_type,           f[5]->>'$' AS "type",
    json_type(f[6]) AS occurred_at_type,    f[6]->>'$' AS occurred_at_text,
    json_type(f[7]) AS data_type,           f[7]::VARCHAR AS data
FROM envelope
