-- The lake's tables, apart from `profiles`, whose gig_<attribute> columns follow
-- the contract and the attributes seen (see gig_etl/lib/warehouse.py). Analysts'
-- tables are in `main`, gig-etl's own state in `internal`. A lake has no keys
-- nor constraints: each table's comment says what is unique in it, and the load
-- keeps it so. What each table and column holds is in comments.sql.

CREATE SCHEMA IF NOT EXISTS internal;

CREATE TABLE IF NOT EXISTS main.attribute_catalog (
    integration VARCHAR NOT NULL,
    attribute   VARCHAR NOT NULL,      -- gig_<name>, the name exactly as GiG sent it
    data_type   VARCHAR NOT NULL,      -- the DuckDB type its values load as
    created_at  TIMESTAMPTZ NOT NULL,  -- approval, for known attributes; else first occurred_at
    -- Where a profile's value is: its own column (`attribute`), or, for a name that
    -- cannot be a column, the key <name> of profiles.extra_attributes.
    column_name VARCHAR NOT NULL
    -- One row per (integration, attribute).
);

CREATE TABLE IF NOT EXISTS main.subscriptions (
    integration VARCHAR NOT NULL,
    profile_id  VARCHAR NOT NULL,
    channel     VARCHAR NOT NULL,
    subscribed  BOOLEAN,
    updated_at  TIMESTAMPTZ NOT NULL
    -- One row per (integration, profile_id, channel): each batch replaces every
    -- row of the profiles it touches.
);

CREATE TABLE IF NOT EXISTS main.events (
    integration VARCHAR NOT NULL,
    event_id    VARCHAR NOT NULL,      -- the message_id
    event_type  VARCHAR NOT NULL,
    event_name  VARCHAR NOT NULL,
    customer_id VARCHAR NOT NULL,
    profile_id  VARCHAR,               -- null until the customer's identifier is known
    occurred_at TIMESTAMPTZ NOT NULL,
    properties  JSON NOT NULL,
    topic       VARCHAR NOT NULL,
    kafka_partition INTEGER NOT NULL,
    kafka_offset    BIGINT NOT NULL
    -- event_id is unique per integration: a message_id in seen_messages is never
    -- loaded again.
);

CREATE TABLE IF NOT EXISTS main.event_catalog (
    integration   VARCHAR NOT NULL,
    event_type    VARCHAR NOT NULL,
    event_name    VARCHAR NOT NULL,
    first_seen_at TIMESTAMPTZ NOT NULL,  -- occurred_at of the first event of the type
    last_seen_at  TIMESTAMPTZ NOT NULL,
    event_count   BIGINT NOT NULL
    -- One row per (integration, event_type).
);

CREATE TABLE IF NOT EXISTS main.quarantine (
    integration     VARCHAR NOT NULL,
    topic           VARCHAR NOT NULL,
    kafka_partition INTEGER NOT NULL,
    kafka_offset    BIGINT NOT NULL,
    key            BLOB,
    raw_value      BLOB,                 -- untouched
    reason         VARCHAR NOT NULL,      -- the detail, the bad value included
    quarantined_at TIMESTAMPTZ NOT NULL,  -- when the message reached Kafka
    customer_id    VARCHAR,               -- the customer_id the value names, if it names one
    reason_code    VARCHAR               -- parse.QuarantineReason
    -- One row per (integration, topic, kafka_partition, kafka_offset).
);
-- Lakes made before reasons had codes (schema version 1).
ALTER TABLE main.quarantine ADD COLUMN IF NOT EXISTS reason_code VARCHAR;

-- gig-etl's own state, not for analysts.

-- Every message_id applied, so a re-sent message changes nothing. Each batch
-- anti-joins against it before inserting, so each id is here once (no index).
-- Kept as its 128-bit MD5, in two halves: each batch's lookup scans the whole
-- table, and fixed width scans 4x faster than the text.
-- Two ids of one integration with one hash would make the second a duplicate:
-- at a billion ids the odds are below 1 in 10^20.
CREATE TABLE IF NOT EXISTS internal.seen_messages (
    integration  VARCHAR NOT NULL,
    message_hash_upper UBIGINT NOT NULL,
    message_hash_lower UBIGINT NOT NULL
);

-- The newest value of each attribute of each customer; `profiles` is its pivot.
-- value: the JSON scalar as text (strings unquoted), or JSON text for arrays.
CREATE TABLE IF NOT EXISTS internal.attribute_state (
    integration VARCHAR NOT NULL,
    customer_id VARCHAR NOT NULL,
    attribute   VARCHAR NOT NULL,       -- the GiG name, without gig_
    value       VARCHAR,                -- null: cleared
    occurred_at TIMESTAMPTZ NOT NULL,
    kafka_ts    TIMESTAMPTZ,
    "partition" INTEGER NOT NULL,
    "offset"    BIGINT NOT NULL
    -- One row per (integration, customer_id, attribute), kept by merge_attribute_state.sql;
    -- no index: an index this size stays in memory and grows with the customers.
);

-- Quarantined messages found about an erased customer under another key (a
-- loaded message is keyed by its customer): raw Parquet loses them at the next
-- raw erasure, which then forgets them.
CREATE TABLE IF NOT EXISTS internal.raw_erasure_positions (
    integration VARCHAR NOT NULL,
    topic       VARCHAR NOT NULL,
    "partition" INTEGER NOT NULL,
    "offset"    BIGINT NOT NULL
);

-- Raw batches loaded, with the run's accounting: rows = loaded + duplicates + quarantined.
CREATE TABLE IF NOT EXISTS internal.loaded_batches (
    integration VARCHAR NOT NULL,
    batch_id    VARCHAR NOT NULL,
    topic_kind  VARCHAR NOT NULL,
    "rows"      BIGINT NOT NULL,
    loaded      BIGINT NOT NULL,
    duplicates  BIGINT NOT NULL,
    quarantined BIGINT NOT NULL,
    erasures    BIGINT NOT NULL,
    loaded_at   TIMESTAMPTZ NOT NULL,
    -- the raw file rewritten without the customers erased before it was loaded
    raw_erasures_applied BOOLEAN NOT NULL DEFAULT false
    -- One row per (integration, batch_id).
);

-- The version of these definitions the lake was made with (warehouse.SCHEMA_VERSION).
CREATE TABLE IF NOT EXISTS internal.lake_schema (version INTEGER NOT NULL);
