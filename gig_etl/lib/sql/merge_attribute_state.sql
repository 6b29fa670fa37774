-- Newest value wins: the batch's newest value of each (customer, attribute) in
-- `newest_values` replaces the stored one only if it is newer (occurred_at, then
-- the later Kafka position). The stored values are `touched_state`: those of the
-- chunk's customers, read once at its start (with the row holding each), so the
-- merge never scans attribute_state, whose size grows with the customers.
CREATE OR REPLACE TEMP TABLE winning_values AS
SELECT n.*, s.state_row AS replaced_row
FROM newest_values AS n
LEFT JOIN touched_state AS s
  ON s.customer_id = n.customer_id AND s.attribute = n.attribute
WHERE s.customer_id IS NULL
   OR row(n.occurred_at, n.kafka_ts, n."partition", n."offset") > row(s.occurred_at, s.kafka_ts, s."partition", s."offset");

-- By the row the join found: matching the keys again read three text columns
-- of every stored value a second time (0.15 against 0.18 s a batch at 5M).
DELETE FROM attribute_state WHERE rowid IN (SELECT replaced_row FROM winning_values WHERE replaced_row IS NOT NULL);

INSERT INTO attribute_state BY NAME
SELECT integration, customer_id, attribute, value, occurred_at, kafka_ts, "partition", "offset" FROM winning_values;
