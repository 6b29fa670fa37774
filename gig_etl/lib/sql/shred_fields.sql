-- One row per entry of `data` in the messages of `shredded` whose data is an
-- object: its name, JSON type ('NULL' for an explicit null, which clears) and
-- value as text (a scalar unquoted; an array or object as JSON).
SELECT
    "partition", "offset", field,
    json_type(data, '$."' || replace(field, '"', '\"') || '"') AS json_type,
    json_extract_string(data, '$."' || replace(field, '"', '\"') || '"') AS value
FROM shredded, unnest(json_keys(data)) AS entries(field)
WHERE data_type = 'OBJECT'
