-- The warehouse's tables. Idempotent: run before every load.
CREATE TABLE IF NOT EXISTS attribute_catalog (
    integration VARCHAR NOT NULL,
    attribute   VARCHAR NOT NULL,   -- gig_<name>
    data_type   VARCHAR NOT NULL,   -- the DuckDB type of the profiles column
    created_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (integration, attribute)
);
