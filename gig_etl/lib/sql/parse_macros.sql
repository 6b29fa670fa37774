-- The text rules of the parse (scratch_database() makes these).

-- RFC 3339 date-time; the zone (Z or ±hh:mm) is what "without a zone" lacks.
-- Hours, minutes and seconds in range: a leap second (:60) is refused too, since
-- neither Python nor DuckDB holds one. Days in range are checked by the cast.
CREATE OR REPLACE TEMP MACRO rfc3339_without_zone(text) AS
    regexp_matches(text, '^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ]([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]+)?$');
CREATE OR REPLACE TEMP MACRO rfc3339(text) AS
    regexp_matches(text, '^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ]([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]+)?([Zz]|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$');
-- A calendar date as YYYY-MM-DD; days in range are checked by the cast.
CREATE OR REPLACE TEMP MACRO iso_date(text) AS regexp_matches(text, '^[0-9]{4}-[0-9]{2}-[0-9]{2}$');
-- The instant an RFC 3339 time names, by the cast the warehouse makes of a time
-- (upper(): DuckDB reads T and Z, not the t and z RFC 3339 allows too); NULL if
-- it names none, such as the 30th of February.
CREATE OR REPLACE TEMP MACRO instant_of(text) AS TRY_CAST(upper(text) AS TIMESTAMPTZ);
-- The instants Python holds (the years 1 to 9999, UTC); DuckDB holds more,
-- which would load and then fail whatever reads them back.
CREATE OR REPLACE TEMP MACRO instant_held(instant) AS
    instant BETWEEN '0001-01-01 00:00:00+00'::TIMESTAMPTZ AND '9999-12-31 23:59:59.999999+00'::TIMESTAMPTZ;
-- Empty or only Unicode White_Space (what polars' and Python's strip() remove).
CREATE OR REPLACE TEMP MACRO blank(text) AS regexp_matches(text, '^[\t-\r\x{85}\p{Z}]*$');
-- A quarantine reason: its code (a QuarantineReason) and its detail.
CREATE OR REPLACE TEMP MACRO problem(reason_code, reason) AS struct_pack(reason_code := reason_code, reason := reason);
-- JSON text that is a string with no escape in it: its text is what is between the quotes.
CREATE OR REPLACE TEMP MACRO quoted_plain(json) AS starts_with(json, '"') AND NOT contains(json, '\');
