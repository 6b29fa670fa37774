-- The warehouse's tables, apart from `profiles`, whose gig_<attribute> columns
-- follow the contract and the attributes seen (see gig_etl/lib/warehouse.py).
-- Idempotent: run on every connection.

CREATE TABLE IF NOT EXISTS attribute_catalog (
    integration VARCHAR NOT NULL,
    attribute   VARCHAR NOT NULL,      -- gig_<name>, the name exactly as GiG sent it
    data_type   VARCHAR NOT NULL,      -- the DuckDB type its values load as
    created_at  TIMESTAMPTZ NOT NULL,  -- approval, for known attributes; else first occurred_at
    -- Where a profile's value is: its own column (`attribute`), or, for a name that
    -- cannot be a column, the key <name> of profiles.extra_attributes.
    column_name VARCHAR,
    PRIMARY KEY (integration, attribute)
);
-- Catalogs made before names were routed: every attribute then had its column.
ALTER TABLE attribute_catalog ADD COLUMN IF NOT EXISTS column_name VARCHAR;
UPDATE attribute_catalog SET column_name = attribute WHERE column_name IS NULL;

CREATE TABLE IF NOT EXISTS subscriptions (
    integration VARCHAR NOT NULL,
    profile_id  VARCHAR NOT NULL,
    channel     VARCHAR NOT NULL,
    subscribed  BOOLEAN,
    updated_at  TIMESTAMPTZ NOT NULL
    -- One row per (integration, profile_id, channel): each batch replaces every
    -- row of the profiles it touches. No primary key: keeping its index cost a
    -- 5M load about a tenth of its time (98 and 91 s against 103 and 106 s).
);

CREATE TABLE IF NOT EXISTS events (
    integration VARCHAR NOT NULL,
    event_id    VARCHAR NOT NULL,      -- the message_id
    event_type  VARCHAR NOT NULL,
    event_name  VARCHAR NOT NULL,
    customer_id VARCHAR NOT NULL,
    profile_id  VARCHAR,               -- null until the customer's identifier is known
    occurred_at TIMESTAMPTZ NOT NULL,
    properties  JSON NOT NULL,
    topic       VARCHAR NOT NULL,
    "partition" INTEGER NOT NULL,
    "offset"    BIGINT NOT NULL
    -- No primary key: an index costs more than the load itself, and event_id is
    -- unique already, since a message_id in seen_messages is never loaded again.
);

CREATE TABLE IF NOT EXISTS event_catalog (
    integration   VARCHAR NOT NULL,
    event_type    VARCHAR NOT NULL,
    event_name    VARCHAR NOT NULL,
    first_seen_at TIMESTAMPTZ NOT NULL,  -- occurred_at of the first event of the type
    last_seen_at  TIMESTAMPTZ NOT NULL,
    event_count   BIGINT NOT NULL,
    PRIMARY KEY (integration, event_type)
);

CREATE TABLE IF NOT EXISTS quarantine (
    integration    VARCHAR NOT NULL,
    topic          VARCHAR NOT NULL,
    "partition"    INTEGER NOT NULL,
    "offset"       BIGINT NOT NULL,
    key            BLOB,
    raw_value      BLOB,                 -- untouched
    reason         VARCHAR NOT NULL,
    quarantined_at TIMESTAMPTZ NOT NULL,  -- when the message reached Kafka
    customer_id    VARCHAR,               -- the customer_id the value names, if it names one
    PRIMARY KEY (integration, topic, "partition", "offset")
);
ALTER TABLE quarantine ADD COLUMN IF NOT EXISTS customer_id VARCHAR;

-- Internal state, not for analysts.

-- Every message_id applied, so a re-sent message changes nothing. Each batch
-- anti-joins against it before inserting, so each id is here once (no index).
-- Kept as its 128-bit MD5: each batch's lookup scans the whole table, and fixed
-- width scans 4x faster than the text (0.05 vs 0.2 s a batch at 5M messages).
-- Two ids of one integration with one hash would make the second a duplicate:
-- at a billion ids the odds are below 1 in 10^20.
CREATE OR REPLACE TEMP MACRO message_id_hash(message_id) AS md5_number(message_id);
CREATE TABLE IF NOT EXISTS seen_messages (
    integration  VARCHAR NOT NULL,
    message_hash UHUGEINT NOT NULL
);

-- The newest value of each attribute of each customer; `profiles` is its pivot.
-- value: the JSON scalar as text (strings unquoted), or JSON text for arrays.
CREATE TABLE IF NOT EXISTS attribute_state (
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

-- Customers erased by a tombstone: later-arriving older messages stay erased.
CREATE TABLE IF NOT EXISTS erasures (
    integration VARCHAR NOT NULL,
    customer_id VARCHAR NOT NULL,
    erased_at   TIMESTAMPTZ NOT NULL,   -- Kafka time of the tombstone
    raw_erased  BOOLEAN NOT NULL DEFAULT false,  -- every raw batch rewritten without the customer
    PRIMARY KEY (integration, customer_id)
);

-- Quarantined messages found about an erased customer under another key (a
-- loaded message is keyed by its customer): raw Parquet loses them at the next
-- raw erasure, which then forgets them.
CREATE TABLE IF NOT EXISTS raw_erasure_positions (
    integration VARCHAR NOT NULL,
    topic       VARCHAR NOT NULL,
    "partition" INTEGER NOT NULL,
    "offset"    BIGINT NOT NULL
);

-- Raw batches loaded, with the run's accounting: rows = loaded + duplicates + quarantined.
CREATE TABLE IF NOT EXISTS loaded_batches (
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
    raw_erasures_applied BOOLEAN NOT NULL DEFAULT false,
    PRIMARY KEY (integration, batch_id)
);

-- Warehouses created before raw erasure was tracked (older gig-etl versions).
ALTER TABLE erasures ADD COLUMN IF NOT EXISTS raw_erased BOOLEAN DEFAULT false;
ALTER TABLE loaded_batches ADD COLUMN IF NOT EXISTS raw_erasures_applied BOOLEAN DEFAULT false;
