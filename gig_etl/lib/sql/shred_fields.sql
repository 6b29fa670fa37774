-- One row per entry of `data` in the messages of `shredded` whose data is an
-- object: its name, JSON type ('NULL' for an explicit null, which clears),
-- value as text (a scalar unquoted; an array or object as JSON), whether the
-- name occurs more than once in the object (bad input: which value counts?;
-- such an object's entries have no type nor value),
-- and for a timestamp field the instant its text names.
WITH parsed_objects AS (
    SELECT "partition", "offset", data,
        -- One parse of `data` for all its entries (a lookup per name parses it
        -- again per name).
        TRY(json_transform(data, '"MAP(VARCHAR, JSON)"')) AS entries
    FROM shredded
    WHERE data_type = 'OBJECT'
), objects AS (
    -- DuckDB builds the MAP of an object with a name twice, and fails only when
    -- it is kept: such an object has no entries (NULL).
    SELECT "partition", "offset", data,
        CASE WHEN len(list_distinct(map_keys(entries))) = len(map_keys(entries)) THEN entries END AS entries
    FROM parsed_objects
), distinct_names AS (
    SELECT "partition", "offset",
        unnest(map_keys(entries)) AS field, unnest(map_values(entries)) AS entry
    FROM objects
    WHERE entries IS NOT NULL
), unmapped_names AS (
    -- Rare: an object with a name twice (or that no MAP holds). Only its names,
    -- with no type: the message is quarantined, so no value is needed, and a name
    -- is never made into a JSON path.
    SELECT "partition", "offset", field
    FROM objects, unnest(json_keys(data)) AS names(field)
    WHERE entries IS NULL
), fields AS (
    SELECT "partition", "offset", field,
        coalesce(json_type(entry), 'NULL') AS json_type,  -- a JSON null is an SQL NULL in a MAP
        entry->>'$' AS value,
        false AS repeated
    FROM distinct_names
    UNION ALL
    SELECT "partition", "offset", field, NULL, NULL,
        count(*) OVER (PARTITION BY "partition", "offset", field) > 1
    FROM unmapped_names
)
SELECT *,
    -- `timestamp_fields` lists them (scratch_database() makes it: a list given as a
    -- parameter here made this query six times slower); the cast is the one for
    -- the envelope's occurred_at (shred_messages.sql).
    CASE WHEN json_type = 'VARCHAR' AND field IN (SELECT field FROM timestamp_fields)
        THEN TRY_CAST(upper(value) AS TIMESTAMPTZ) END AS instant
FROM fields
