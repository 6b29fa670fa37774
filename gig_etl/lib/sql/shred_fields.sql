-- One row per entry of `data` in the messages of `shredded` whose data is an
-- object: its name, JSON type ('NULL' for an explicit null, which clears) and
-- value as text (a scalar unquoted; an array or object as JSON). An object with
-- a name twice (bad input: which value counts?) lists only its names, with no
-- type nor value: the message is quarantined, so no value is needed, and a name
-- is never made into a JSON path.
WITH objects AS (
    SELECT "partition", "offset", data,
        -- One parse of `data` for all its entries (a lookup per name parses it
        -- again per name).
        TRY(json_transform(data, '"MAP(VARCHAR, JSON)"')) AS entries
    FROM shredded
    WHERE data_type = 'OBJECT'
), listed AS (
    -- DuckDB builds the MAP of an object with a name twice, and fails only when
    -- it is kept: such an object (or one no MAP holds) is not mapped.
    SELECT "partition", "offset", mapped,
        unnest(CASE WHEN mapped THEN map_keys(entries) ELSE json_keys(data) END) AS field,
        unnest(CASE WHEN mapped THEN map_values(entries) END) AS entry
    FROM (
        SELECT *, coalesce(len(list_distinct(map_keys(entries))) = len(map_keys(entries)), false) AS mapped
        FROM objects
    )
)
SELECT "partition", "offset", field,
    -- A JSON null is an SQL NULL in a MAP.
    CASE WHEN mapped THEN coalesce(json_type(entry), 'NULL') END AS json_type,
    entry->>'$' AS value
FROM listed
