-- What each analyst table, view and table column holds, as DuckDB comments: an analyst
-- reads them with `SELECT table_name, column_name, comment FROM duckdb_columns()`.
-- The gig_<attribute> columns of `profiles` get theirs as they are made.

COMMENT ON TABLE main.profiles IS 'One row per profile of each integration: its GiG attributes, newest value first. Unique: (integration, profile_id).';
COMMENT ON COLUMN main.profiles.integration IS 'The GiG connection (one tenant) the row came from.';
COMMENT ON COLUMN main.profiles.profile_id IS 'The profile: the value of the identifier the connection maps profiles by.';
COMMENT ON COLUMN main.profiles.customer_id IS 'GiG''s customer_id behind the profile.';
COMMENT ON COLUMN main.profiles.extra_attributes IS 'Attributes whose names cannot be columns (or past the column limit): name as GiG sent it, to the value as text.';
COMMENT ON COLUMN main.profiles.updated_at IS 'occurred_at of the newest change to any of the profile''s attributes (UTC).';

COMMENT ON TABLE main.subscriptions IS 'Each profile''s subscription status per channel, from GiG''s subscription attributes. Unique: (integration, profile_id, channel).';
COMMENT ON COLUMN main.subscriptions.integration IS 'The GiG connection the row came from.';
COMMENT ON COLUMN main.subscriptions.profile_id IS 'The profile (profiles.profile_id).';
COMMENT ON COLUMN main.subscriptions.channel IS 'email, sms, push, ...: the channel the status is for.';
COMMENT ON COLUMN main.subscriptions.subscribed IS 'Whether the profile may be sent marketing on the channel; NULL when GiG cleared it.';
COMMENT ON COLUMN main.subscriptions.updated_at IS 'occurred_at of the change that set the status (UTC).';

COMMENT ON TABLE main.events IS 'Every GiG player event, once each. Unique: (integration, event_id).';
COMMENT ON COLUMN main.events.integration IS 'The GiG connection the event came from.';
COMMENT ON COLUMN main.events.event_id IS 'GiG''s message_id of the event.';
COMMENT ON COLUMN main.events.event_type IS 'GiG''s type, such as payment_deposit (event_catalog lists those seen).';
COMMENT ON COLUMN main.events.event_name IS 'The type''s name for campaigns, such as Payment - Deposit.';
COMMENT ON COLUMN main.events.customer_id IS 'GiG''s customer_id the event is about.';
COMMENT ON COLUMN main.events.profile_id IS 'The customer''s profile; NULL while the identifier that maps them is unknown.';
COMMENT ON COLUMN main.events.occurred_at IS 'When the event happened, by GiG (UTC).';
COMMENT ON COLUMN main.events.properties IS 'The event''s data as GiG sent it (JSON): amount, status, game, ...';
COMMENT ON COLUMN main.events.topic IS 'The Kafka topic the event was read from.';
COMMENT ON COLUMN main.events.kafka_partition IS 'The Kafka partition of its first copy.';
COMMENT ON COLUMN main.events.kafka_offset IS 'The Kafka offset of its first copy.';

COMMENT ON TABLE main.event_catalog IS 'Each event type of each integration, once it has been seen. Unique: (integration, event_type).';
COMMENT ON COLUMN main.event_catalog.integration IS 'The GiG connection.';
COMMENT ON COLUMN main.event_catalog.event_type IS 'GiG''s type (events.event_type).';
COMMENT ON COLUMN main.event_catalog.event_name IS 'The type''s name for campaigns.';
COMMENT ON COLUMN main.event_catalog.first_seen_at IS 'occurred_at of the type''s oldest event held (UTC).';
COMMENT ON COLUMN main.event_catalog.last_seen_at IS 'occurred_at of the type''s newest event held (UTC).';
COMMENT ON COLUMN main.event_catalog.event_count IS 'Events of the type held.';

COMMENT ON TABLE main.attribute_catalog IS 'Each GiG profile attribute of each integration, known or first seen in data. Unique: (integration, attribute).';
COMMENT ON COLUMN main.attribute_catalog.integration IS 'The GiG connection.';
COMMENT ON COLUMN main.attribute_catalog.attribute IS 'gig_ and the name exactly as GiG sent it.';
COMMENT ON COLUMN main.attribute_catalog.data_type IS 'The DuckDB type its values load as.';
COMMENT ON COLUMN main.attribute_catalog.created_at IS 'The approval, for attributes the contract knows; else the first occurred_at that had it (UTC).';
COMMENT ON COLUMN main.attribute_catalog.column_name IS 'Where its value is: its own column of profiles, or extra_attributes (keyed by the name as sent).';

COMMENT ON TABLE main.quarantine IS 'Messages that could not be loaded, untouched, with why. Unique: (integration, topic, kafka_partition, kafka_offset).';
COMMENT ON COLUMN main.quarantine.integration IS 'The GiG connection.';
COMMENT ON COLUMN main.quarantine.topic IS 'The Kafka topic of the message.';
COMMENT ON COLUMN main.quarantine.kafka_partition IS 'The Kafka partition of the message.';
COMMENT ON COLUMN main.quarantine.kafka_offset IS 'The Kafka offset of the message.';
COMMENT ON COLUMN main.quarantine.key IS 'The Kafka key, as sent.';
COMMENT ON COLUMN main.quarantine.raw_value IS 'The Kafka value, as sent.';
COMMENT ON COLUMN main.quarantine.reason IS 'Why it was not loaded, in words, the bad value included.';
COMMENT ON COLUMN main.quarantine.reason_code IS 'Why it was not loaded, as one of a few codes to count by: not_text, not_an_object, wrong_tenant, time_without_zone, bad_value, ... (see the README).';
COMMENT ON COLUMN main.quarantine.quarantined_at IS 'When the message reached Kafka (UTC).';
COMMENT ON COLUMN main.quarantine.customer_id IS 'The customer_id the value names, if it names one.';

-- A view's columns take no comments in DuckDB: its comment says what they hold.
COMMENT ON VIEW main.marketable_profiles IS 'Profiles that may receive marketing on a channel: subscribed, and known not to be blocked, self-excluded or a test account. Columns: integration, profile_id, channel.';
COMMENT ON VIEW main.player_value IS 'Per profile (integration, profile_id, customer_id) and currency, approved payments each counted once at their newest status: deposits_7d/30d/90d and deposit_amount_7d/30d/90d, the same for withdrawals, net_deposit (deposits less withdrawals), last_deposit_at. Money is never added across currencies: a row per currency paid in, or one in the profile''s currency. last_activity_at (newest event), casino_lifetime_win and sports_lifetime_win are the profile''s.';
