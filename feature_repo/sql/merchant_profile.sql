-- Daily snapshot of each merchant's public profile: what a merchant registry exports.
SELECT
    m.merchant_id,
    make_timestamptz(tau) AS event_timestamp,
    $created::TIMESTAMPTZ AS created_timestamp,
    m.category,
    m.is_online
FROM merchants m, range($start_us, $end_us + 1, $day) AS days(tau)
ORDER BY m.merchant_id, event_timestamp
