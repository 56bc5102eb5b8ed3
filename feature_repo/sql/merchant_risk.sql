-- Daily merchant activity and fraud rate, from labels already known at the snapshot time.
--
-- The row at day boundary tau covers transactions in [tau - window, tau). A transaction counts
-- towards the fraud rate only if its label was known at tau (label_available_at <= tau), so no
-- row uses a chargeback that had not arrived yet. Labels are pushed apart from the transactions
-- and joined by id.
WITH tx AS (
    SELECT t.merchant_id, epoch_us(t."timestamp") AS ts, l.is_fraud, epoch_us(l.label_available_at) AS label_us
    FROM transactions t LEFT JOIN labels l USING (transaction_id)
),
grid AS (
    SELECT merchant_id, tau
    FROM merchants, range($start_us, $end_us + 1, $day) AS days(tau)
),
joined AS (
    SELECT g.merchant_id, g.tau, x.ts, x.is_fraud, x.label_us
    FROM grid g
    LEFT JOIN tx x
        ON x.merchant_id = g.merchant_id AND x.ts < g.tau AND x.ts >= g.tau - 30 * $day
),
stats AS (
    SELECT
        merchant_id,
        tau,
        count(ts) FILTER (WHERE ts >= tau - $day) AS merchant_txn_count_1d,
        count(ts) FILTER (WHERE ts >= tau - 7 * $day) AS merchant_txn_count_7d,
        count(ts) AS merchant_txn_count_30d,
        count(ts) FILTER (WHERE label_us <= tau) AS merchant_labelled_count_30d,
        coalesce(sum(is_fraud) FILTER (WHERE label_us <= tau), 0) AS merchant_fraud_count_30d
    FROM joined
    GROUP BY merchant_id, tau
)
SELECT
    merchant_id,
    make_timestamptz(tau) AS event_timestamp,
    $created::TIMESTAMPTZ AS created_timestamp,
    merchant_txn_count_1d,
    merchant_txn_count_7d,
    merchant_txn_count_30d,
    merchant_labelled_count_30d,
    merchant_fraud_count_30d::BIGINT AS merchant_fraud_count_30d,
    merchant_fraud_count_30d / nullif(merchant_labelled_count_30d, 0) AS merchant_fraud_rate_30d
FROM stats
ORDER BY merchant_id, event_timestamp
