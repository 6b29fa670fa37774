-- The connection's macros (temporary: a lake keeps data, and every writing
-- connection makes these). The erasure rule's are in erasure.sql.

-- How seen_messages keeps a message_id (see its comment in schema.sql): the two
-- halves of its 128-bit MD5. Not one UHUGEINT: a lake's Parquet files keep
-- 128-bit integers only approximately, and then no id is ever found again.
-- The halves are md5_number_upper's and md5_number_lower's values, taken from one
-- md5_number: each of those two hashes the id again.
CREATE OR REPLACE TEMP MACRO message_hash_upper(message_id) AS
    (md5_number(message_id) & 18446744073709551615::UHUGEINT)::UBIGINT;
CREATE OR REPLACE TEMP MACRO message_hash_lower(message_id) AS (md5_number(message_id) >> 64)::UBIGINT;
