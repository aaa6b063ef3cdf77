-- Views for dashboards and analysts. Every view aggregates in SQL; none ships raw rows.

-- Touches, attributed conversions and value per channel and attribution model.
CREATE OR REPLACE VIEW channel_performance AS
WITH credits AS (
    SELECT model, channel,
           sum(credit) AS conversions,
           sum(value_credit) AS value,
           count(DISTINCT conversion_id) AS conversions_touched
    FROM attribution_credits
    GROUP BY model, channel
), touches AS (
    SELECT channel, count(*) AS touches FROM journey_touchpoints GROUP BY channel
)
SELECT c.model, c.channel, coalesce(t.touches, 0) AS touches, c.conversions, c.value,
       c.conversions_touched
FROM credits c LEFT JOIN touches t USING (channel);

-- The most frequent paths, how often each converts and what it is worth.
CREATE OR REPLACE VIEW conversion_paths AS
SELECT path,
       count(*) FILTER (WHERE converted) AS conversions,
       count(*) FILTER (WHERE NOT converted) AS null_paths,
       count(*) AS journeys,
       count(*) FILTER (WHERE converted) / count(*) AS conversion_rate,
       sum(conversion_value) AS value,
       avg(touch_count) AS avg_touches
FROM journeys
GROUP BY path;

-- Channel-to-channel transitions of all journeys: (start) -> first touch -> ...
-- -> (conversion) or (null), per day the journey ended (its conversion, or the
-- end of a null path's window). The chain of touches behind purchases.
CREATE OR REPLACE VIEW path_transitions_daily AS
WITH ordered AS (
    SELECT jt.journey_id, jt.position, jt.channel, j.converted,
           CAST(coalesce(j.conversion_time, j.window_end) AS DATE) AS day,
           lag(jt.channel) OVER (PARTITION BY jt.journey_id ORDER BY jt.position) AS prev,
           lead(jt.channel) OVER (PARTITION BY jt.journey_id ORDER BY jt.position) AS next
    FROM journey_touchpoints jt JOIN journeys j USING (journey_id)
), edges AS (
    SELECT day, coalesce(prev, '(start)') AS from_channel, channel AS to_channel FROM ordered
    UNION ALL
    SELECT day, channel, CASE WHEN converted THEN '(conversion)' ELSE '(null)' END
    FROM ordered WHERE next IS NULL
)
SELECT day, from_channel, to_channel, count(*) AS transitions
FROM edges
GROUP BY day, from_channel, to_channel;

-- The same over all time.
CREATE OR REPLACE VIEW path_transitions AS
SELECT from_channel, to_channel, CAST(sum(transitions) AS BIGINT) AS transitions
FROM path_transitions_daily
GROUP BY from_channel, to_channel;

-- Journeys per day they ended and path (for a period's top paths).
CREATE OR REPLACE VIEW conversion_paths_daily AS
SELECT CAST(coalesce(conversion_time, window_end) AS DATE) AS day, path,
       count(*) FILTER (WHERE converted) AS conversions,
       count(*) FILTER (WHERE NOT converted) AS null_paths,
       coalesce(sum(conversion_value) FILTER (WHERE converted), 0) AS value
FROM journeys
GROUP BY day, path;

-- Attributed conversions and value per day of conversion, model and channel
-- (channel_performance for a period).
CREATE OR REPLACE VIEW attribution_daily AS
SELECT CAST(conversion_time AS DATE) AS day, model, channel,
       sum(credit) AS conversions,
       sum(value_credit) AS value
FROM attribution_credits
GROUP BY day, model, channel;

-- New customers by acquisition month, channel and first category, against the
-- typical new customer.
CREATE OR REPLACE VIEW new_customer_cohorts AS
SELECT cohort, acquisition_channel, first_category,
       count(*) AS customers,
       avg(first_order_value) AS avg_first_order_value,
       avg(expected_value_365d) AS avg_expected_value_365d,
       avg(typical_expected_value_365d) AS typical_expected_value_365d,
       avg(expected_value_365d) / nullif(avg(typical_expected_value_365d), 0) AS vs_typical,
       avg(p_alive) AS avg_p_alive,
       avg(CASE WHEN discount_used THEN 1.0 ELSE 0.0 END) AS discount_share
FROM customer_scores
GROUP BY cohort, acquisition_channel, first_category;

-- Customers to stop (or reduce) messaging on a channel, with the evidence.
CREATE OR REPLACE VIEW channel_suppression AS
SELECT customer_key, channel, recommendation, sent, responses, response_rate, ci_low, ci_high,
       last_response_at
FROM channel_responsiveness
WHERE recommendation IN ('suppress', 'reduce');

-- Recommendations per messaging channel, by the channel each customer responds
-- to best (their inferred preferred channel): whom to stop emailing, and where
-- to reach them instead.
CREATE OR REPLACE VIEW suppression_by_preferred_channel AS
WITH preferred AS (
    SELECT customer_key,
           list_filter(attributes, lambda a: a.name = 'preferred_channel')[1].value AS preferred
    FROM customer_profiles
)
SELECT r.channel, r.recommendation,
       coalesce(p.preferred, '(none yet)') AS preferred_channel,
       count(*) AS customers
FROM channel_responsiveness r LEFT JOIN preferred p USING (customer_key)
GROUP BY r.channel, r.recommendation, preferred_channel;

-- Who is in each audience now: each customer's latest change per audience (highest
-- profile version) is an entry. The sink keeps every change (audience_changes).
CREATE OR REPLACE VIEW audience_members AS
SELECT audience, customer_key, profile_version, triggered_at AS member_since, reason
FROM (
    SELECT *, row_number() OVER (
        PARTITION BY audience, customer_key ORDER BY profile_version DESC, change DESC
    ) AS latest
    FROM audience_changes
)
WHERE latest = 1 AND change = 'entered';

-- Audience size at the end of each day, from the history of entries and exits.
CREATE OR REPLACE VIEW audience_size_daily AS
WITH moves AS (
    SELECT audience, CAST(triggered_at AS DATE) AS day,
           sum(CASE WHEN change = 'entered' THEN 1 ELSE -1 END) AS net,
           count(*) FILTER (WHERE change = 'entered') AS entered,
           count(*) FILTER (WHERE change = 'exited') AS exited
    FROM audience_changes
    GROUP BY audience, day
)
SELECT audience, day, entered, exited,
       sum(net) OVER (PARTITION BY audience ORDER BY day) AS members
FROM moves;

-- The decision in force per customer and channel (the latest by profile version).
CREATE OR REPLACE VIEW channel_decisions_current AS
SELECT customer_key, channel, decision, preferred_channel, sent, responses, response_rate,
       reason, profile_version, decided_at
FROM (
    SELECT *, row_number() OVER (
        PARTITION BY customer_key, channel ORDER BY profile_version DESC, decided_at DESC
    ) AS latest
    FROM channel_decisions
)
WHERE latest = 1;

-- Customers per channel and decision now: the suppressions by channel.
CREATE OR REPLACE VIEW channel_decision_counts AS
SELECT channel, decision, count(*) AS customers
FROM channel_decisions_current
GROUP BY channel, decision;

-- Message decisions per audience and variant: how the bandit shares the sends.
CREATE OR REPLACE VIEW message_variant_share AS
SELECT audience, coalesce(variant, '(held)') AS variant, count(*) AS decisions,
       count(*) / sum(count(*)) OVER (PARTITION BY audience) AS share
FROM message_decisions
GROUP BY audience, variant;

-- Product feed coverage: customers with a feed, items and categories per list, per day.
CREATE OR REPLACE VIEW feed_coverage AS
WITH latest AS (
    SELECT *, row_number() OVER (PARTITION BY customer_key ORDER BY generated_at DESC) AS n
    FROM recommendations
)
SELECT CAST(generated_at AS DATE) AS day,
       count(DISTINCT customer_key) AS customers,
       avg(len(items)) AS items_per_list,
       avg(categories) AS categories_per_list
FROM latest
WHERE n = 1
GROUP BY day;

-- Freshness per table and dead letters per topic and reason.
CREATE OR REPLACE VIEW pipeline_health AS
WITH tables AS (
    SELECT 'touchpoints' AS name, count(*) AS rows, max(_ingested_at) AS last_write FROM touchpoints
    UNION ALL SELECT 'journeys', count(*), max(_ingested_at) FROM journeys
    UNION ALL SELECT 'attribution_credits', count(*), max(_ingested_at) FROM attribution_credits
    UNION ALL SELECT 'customer_scores', count(*), max(_ingested_at) FROM customer_scores
    UNION ALL SELECT 'customer_profiles', count(*), max(_ingested_at) FROM customer_profiles
    UNION ALL SELECT 'channel_responsiveness', count(*), max(_ingested_at)
              FROM channel_responsiveness
    UNION ALL SELECT 'dead_letters', count(*), max(_ingested_at) FROM dead_letters
)
SELECT 'table' AS kind, name, NULL AS reason, rows, last_write,
       (epoch_ms(now()) - epoch_ms(last_write)) / 1000.0 AS seconds_since_last_write
FROM tables
UNION ALL
SELECT 'dead_letters', source_topic, error_type, count(*), max(_ingested_at),
       (epoch_ms(now()) - epoch_ms(max(_ingested_at))) / 1000.0
FROM dead_letters
GROUP BY source_topic, error_type;

-- Touchpoints written per 10 seconds, as a rate per minute, over the last hour of
-- ingestion (up to the latest write, so a finished run still shows its curve).
CREATE OR REPLACE VIEW ingest_rate AS
SELECT time_bucket(INTERVAL 10 SECOND, _ingested_at) AS bucket_start,
       count(*) AS touchpoints,
       count(*) * 6 AS per_minute
FROM touchpoints
WHERE _ingested_at > (SELECT max(_ingested_at) FROM touchpoints) - INTERVAL 60 MINUTE
GROUP BY bucket_start;
