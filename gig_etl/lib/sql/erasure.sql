-- Who a message is about, for erasure: one rule for the warehouse and raw. A
-- message is about customer X when its Kafka key is X, or when its value names X
-- as its customer_id (a loaded message has both, equal; a quarantined one may
-- differ, and then it is about both). The warehouse applies it to quarantine and
-- records the positions of what it finds under another key
-- (raw_erasure_positions); the raw rewrite drops those and what is keyed by X.
-- The customer_id a raw value names: NULL when it is not UTF-8 JSON naming one.
CREATE OR REPLACE TEMP MACRO value_customer_id(value) AS
    CASE WHEN json_valid(TRY(decode(value))) THEN TRY(decode(value))->>'$.customer_id' END;
-- Whether a message is about one of the customers in `erasure_targets` (a table
-- of customer_id, registered by the caller). Tombstones (a NULL value) are the
-- erasure itself, kept so that a rebuild from raw erases again.
-- Never NULL: a key or a named id that is NULL is about nobody (an IN over NULL
-- is NULL, which a filter would take for "drop").
CREATE OR REPLACE TEMP MACRO about_customers(key, value, customer_id_named) AS
    value IS NOT NULL AND coalesce(
        key IN (SELECT encode(customer_id) FROM erasure_targets)
        OR customer_id_named IN (SELECT customer_id FROM erasure_targets),
        false
    );
