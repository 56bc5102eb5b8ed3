-- Sliding-window statistics of each customer's card activity, exact at every instant.
--
-- A window aggregate over [t - w, t) only changes when a transaction enters it (just after the
-- transaction) or leaves it (just after transaction time + w). One row is written at each such
-- change point, so a point-in-time lookup of the latest row at or before any time t returns the
-- value over [t - w, t) exactly: the current transaction is never included, and the online store
-- holds the same value the offline store would give. Times are epoch microseconds.
WITH points AS (
    SELECT DISTINCT customer_id, tau FROM (
        SELECT customer_id, ts + 1 AS tau FROM tx
        UNION ALL SELECT customer_id, ts + $hour + 1 FROM tx
        UNION ALL SELECT customer_id, ts + $day + 1 FROM tx
        UNION ALL SELECT customer_id, ts + 7 * $day + 1 FROM tx
    )
    WHERE tau <= $end_us
),
stream AS (
    SELECT customer_id, ts AS t_us, merchant_id, amount, night, FALSE AS is_point FROM tx
    UNION ALL
    SELECT customer_id, tau, NULL, NULL, NULL, TRUE FROM points
),
windows AS (
    SELECT
        customer_id,
        t_us,
        is_point,
        count(amount) OVER w1h AS txn_count_1h,
        coalesce(sum(amount) OVER w1h, 0.0) AS amount_sum_1h,
        count(amount) OVER w24h AS txn_count_24h,
        coalesce(sum(amount) OVER w24h, 0.0) AS amount_sum_24h,
        max(amount) OVER w24h AS amount_max_24h,
        count(DISTINCT merchant_id) OVER w24h AS distinct_merchants_24h,
        count(amount) OVER w7d AS txn_count_7d,
        avg(amount) OVER w7d AS amount_mean_7d,
        stddev_samp(amount) OVER w7d AS amount_std_7d,
        max(amount) OVER w7d AS amount_max_7d,
        count(DISTINCT merchant_id) OVER w7d AS distinct_merchants_7d,
        avg(night) OVER w7d AS night_share_7d
    FROM stream
    WINDOW
        w1h AS (PARTITION BY customer_id ORDER BY t_us RANGE BETWEEN $hour PRECEDING AND 1 PRECEDING),
        w24h AS (PARTITION BY customer_id ORDER BY t_us RANGE BETWEEN $day PRECEDING AND 1 PRECEDING),
        w7d AS (PARTITION BY customer_id ORDER BY t_us RANGE BETWEEN 7 * $day PRECEDING AND 1 PRECEDING)
)
SELECT
    customer_id,
    make_timestamptz(t_us) AS event_timestamp,
    $created::TIMESTAMPTZ AS created_timestamp,
    * EXCLUDE (customer_id, t_us, is_point)
FROM windows
WHERE is_point
ORDER BY customer_id, event_timestamp
