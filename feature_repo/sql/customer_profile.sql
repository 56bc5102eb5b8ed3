-- Daily snapshot of each customer's profile, as a CRM export would give it.
SELECT
    c.customer_id,
    make_timestamptz(tau) AS event_timestamp,
    $created::TIMESTAMPTZ AS created_timestamp,
    c.age,
    floor((tau - epoch_us(c.account_opened_at)) / $day)::BIGINT AS account_tenure_days,
    c.credit_limit,
    c.home_region
FROM customers c, range($start_us, $end_us + 1, $day) AS days(tau)
WHERE epoch_us(c.account_opened_at) <= tau
ORDER BY c.customer_id, event_timestamp
