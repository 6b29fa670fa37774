-- One row per raw message of `raw_batch`: the envelope's fields as text with
-- their JSON types, so validation can say exactly what is wrong. Runs in an
-- in-memory DuckDB, not the warehouse: polars cannot list an object's keys nor
-- decode JSON row by row without failing the whole column on one bad value.
WITH decoded AS (
    SELECT *, TRY(decode(value)) AS text FROM raw_batch
), parsed AS (
    -- TRY: AND does not short-circuit row by row, and json_type fails on invalid JSON.
    SELECT *, coalesce(TRY(json_type(text)) = 'OBJECT', false) AS is_object FROM decoded
)
SELECT
    topic, "partition", "offset", "timestamp" AS kafka_ts, key, value,
    value IS NULL AS is_null,
    text IS NOT NULL AS is_text,
    is_object,
    CASE WHEN is_object THEN json_type(text, '$.schema_version') END AS schema_version_type,
    CASE WHEN is_object THEN json_extract_string(text, '$.schema_version') END AS schema_version,
    CASE WHEN is_object THEN json_type(text, '$.message_id') END AS message_id_type,
    CASE WHEN is_object THEN json_extract_string(text, '$.message_id') END AS message_id,
    CASE WHEN is_object THEN json_type(text, '$.tenant_id') END AS tenant_id_type,
    CASE WHEN is_object THEN json_extract_string(text, '$.tenant_id') END AS tenant_id,
    CASE WHEN is_object THEN json_type(text, '$.customer_id') END AS customer_id_type,
    CASE WHEN is_object THEN json_extract_string(text, '$.customer_id') END AS customer_id,
    CASE WHEN is_object THEN json_type(text, '$.type') END AS type_type,
    CASE WHEN is_object THEN json_extract_string(text, '$.type') END AS "type",
    CASE WHEN is_object THEN json_type(text, '$.occurred_at') END AS occurred_at_type,
    CASE WHEN is_object THEN json_extract_string(text, '$.occurred_at') END AS occurred_at_text,
    CASE WHEN is_object THEN json_type(text, '$.data') END AS data_type,
    CASE WHEN is_object THEN json_extract(text, '$.data')::VARCHAR END AS data
FROM parsed
