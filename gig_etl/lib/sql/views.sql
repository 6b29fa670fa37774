-- Views for analysts, in `main` with their tables. Names are qualified: a view
-- is read through connections whose search path is not gig-etl's.

-- Profiles that may receive marketing on a channel. Responsible gambling comes
-- first: a profile is here only when it is known not to be blocked, not to be
-- self-excluded (GiG sent self_excluded_until: empty, or past) and not to be a
-- test account, and is subscribed to the channel. A status GiG never sent, or
-- whose message was quarantined, is unknown, and keeps the profile out.
CREATE OR REPLACE VIEW main.marketable_profiles AS
SELECT s.integration, s.profile_id, s.channel
FROM main.subscriptions AS s
JOIN main.profiles AS p USING (integration, profile_id)
WHERE s.subscribed
  AND p.gig_is_blocked IS FALSE
  AND p.gig_is_test_account IS FALSE
  AND (
    p.gig_self_excluded_until <= now()
    OR (p.gig_self_excluded_until IS NULL AND EXISTS (
        SELECT 1 FROM internal.attribute_state AS a
        WHERE a.integration = p.integration AND a.customer_id = p.customer_id AND a.attribute = 'self_excluded_until'
    ))
  );

-- Per profile and currency: approved deposits and withdrawals over 7, 30 and 90
-- days, each payment once, at its newest status; net deposit and last deposit.
-- Money is never added across currencies: a profile that paid in two has two
-- rows, one with none has one, in its profile's currency. Last activity and the
-- lifetime wins (in the profile's currency) are the profile's, on each row.
CREATE OR REPLACE VIEW main.player_value AS
WITH payments AS (
    SELECT
        integration, customer_id, event_type,
        properties->>'payment_id' AS payment_id,
        last(properties->>'status' ORDER BY occurred_at, kafka_partition, kafka_offset) AS status,
        last(TRY_CAST(properties->>'amount' AS DECIMAL(18,4)) ORDER BY occurred_at, kafka_partition, kafka_offset) AS amount,
        last(properties->>'currency' ORDER BY occurred_at, kafka_partition, kafka_offset) AS currency,
        min(occurred_at) AS made_at
    FROM main.events
    WHERE event_type IN ('payment_deposit', 'payment_withdrawal')
    GROUP BY ALL
), approved AS (
    SELECT * FROM payments WHERE status = 'approved'
), per_currency AS (
    SELECT
        integration, customer_id, currency,
        count(*) FILTER (event_type = 'payment_deposit' AND made_at >= now() - INTERVAL 7 DAY) AS deposits_7d,
        coalesce(sum(amount) FILTER (event_type = 'payment_deposit' AND made_at >= now() - INTERVAL 7 DAY), 0) AS deposit_amount_7d,
        count(*) FILTER (event_type = 'payment_deposit' AND made_at >= now() - INTERVAL 30 DAY) AS deposits_30d,
        coalesce(sum(amount) FILTER (event_type = 'payment_deposit' AND made_at >= now() - INTERVAL 30 DAY), 0) AS deposit_amount_30d,
        count(*) FILTER (event_type = 'payment_deposit' AND made_at >= now() - INTERVAL 90 DAY) AS deposits_90d,
        coalesce(sum(amount) FILTER (event_type = 'payment_deposit' AND made_at >= now() - INTERVAL 90 DAY), 0) AS deposit_amount_90d,
        count(*) FILTER (event_type = 'payment_withdrawal' AND made_at >= now() - INTERVAL 7 DAY) AS withdrawals_7d,
        coalesce(sum(amount) FILTER (event_type = 'payment_withdrawal' AND made_at >= now() - INTERVAL 7 DAY), 0) AS withdrawal_amount_7d,
        count(*) FILTER (event_type = 'payment_withdrawal' AND made_at >= now() - INTERVAL 30 DAY) AS withdrawals_30d,
        coalesce(sum(amount) FILTER (event_type = 'payment_withdrawal' AND made_at >= now() - INTERVAL 30 DAY), 0) AS withdrawal_amount_30d,
        count(*) FILTER (event_type = 'payment_withdrawal' AND made_at >= now() - INTERVAL 90 DAY) AS withdrawals_90d,
        coalesce(sum(amount) FILTER (event_type = 'payment_withdrawal' AND made_at >= now() - INTERVAL 90 DAY), 0) AS withdrawal_amount_90d,
        coalesce(sum(amount) FILTER (event_type = 'payment_deposit'), 0)
            - coalesce(sum(amount) FILTER (event_type = 'payment_withdrawal'), 0) AS net_deposit,
        max(made_at) FILTER (event_type = 'payment_deposit') AS last_deposit_at
    FROM approved
    GROUP BY ALL
), activity AS (
    SELECT integration, customer_id, max(occurred_at) AS last_activity_at FROM main.events GROUP BY ALL
)
SELECT
    p.integration, p.profile_id, p.customer_id,
    coalesce(c.currency, p.gig_currency) AS currency,
    coalesce(c.deposits_7d, 0) AS deposits_7d, coalesce(c.deposit_amount_7d, 0) AS deposit_amount_7d,
    coalesce(c.deposits_30d, 0) AS deposits_30d, coalesce(c.deposit_amount_30d, 0) AS deposit_amount_30d,
    coalesce(c.deposits_90d, 0) AS deposits_90d, coalesce(c.deposit_amount_90d, 0) AS deposit_amount_90d,
    coalesce(c.withdrawals_7d, 0) AS withdrawals_7d, coalesce(c.withdrawal_amount_7d, 0) AS withdrawal_amount_7d,
    coalesce(c.withdrawals_30d, 0) AS withdrawals_30d, coalesce(c.withdrawal_amount_30d, 0) AS withdrawal_amount_30d,
    coalesce(c.withdrawals_90d, 0) AS withdrawals_90d, coalesce(c.withdrawal_amount_90d, 0) AS withdrawal_amount_90d,
    coalesce(c.net_deposit, 0) AS net_deposit,
    c.last_deposit_at,
    a.last_activity_at,
    p.gig_casino_lifetime_win AS casino_lifetime_win,
    p.gig_sports_lifetime_win AS sports_lifetime_win
FROM main.profiles AS p
LEFT JOIN per_currency AS c USING (integration, customer_id)
LEFT JOIN activity AS a USING (integration, customer_id);
