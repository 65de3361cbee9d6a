-- Views that ship with Threadline. Every query session has them, for its own tenant.

-- One row per trace: when it ran, how long, which services, how many spans and errors.
CREATE VIEW traces AS
SELECT
    trace_id,
    min(start_time) AS start_time,
    max(end_time) AS end_time,
    CAST(max(end_time) AS BIGINT) - CAST(min(start_time) AS BIGINT) AS duration_ns,
    count(*) AS span_count,
    sum(CASE WHEN status_code = 'error' THEN 1 ELSE 0 END) AS error_count,
    array_sort(array_distinct(array_agg(service_name))) AS services,
    max(CASE WHEN parent_span_id IS NULL THEN name END) AS root_name
FROM spans
GROUP BY trace_id;

-- One row per log stream: its labels, how many lines, and the time they cover.
CREATE VIEW log_streams AS
SELECT
    stream_id,
    first_value(labels) AS labels,
    count(*) AS lines,
    min(timestamp) AS first_seen,
    max(timestamp) AS last_seen
FROM logs
GROUP BY stream_id;

-- RED metrics of the spans per service, operation and minute. Each span counts as the
-- spans it stands for: span_weight is 1 / its sampling probability, read from the W3C
-- tracestate's OpenTelemetry threshold (ot=...th:...) or a sampling.probability
-- attribute, and 1 without either. sampled_spans is what was stored. The slowest and
-- the latest failing span of each row name their traces: exemplars by construction.
CREATE VIEW span_metrics AS
SELECT
    date_bin(INTERVAL '1 minute', start_time, TIMESTAMP '1970-01-01T00:00:00Z') AS minute,
    service_name,
    name AS operation,
    sum(weight) AS requests,
    sum(weight) / 60.0 AS requests_per_second,
    sum(CASE WHEN status_code = 'error' THEN weight ELSE 0 END) AS errors,
    sum(CASE WHEN status_code = 'error' THEN weight ELSE 0 END) / sum(weight) AS error_ratio,
    sum(weight * duration_ns) / sum(weight) AS mean_duration_ns,
    max(duration_ns) AS max_duration_ns,
    count(*) AS sampled_spans,
    first_value(trace_id ORDER BY duration_ns DESC) AS slowest_trace_id,
    first_value(CASE WHEN status_code = 'error' THEN trace_id END
        ORDER BY CASE WHEN status_code = 'error' THEN 0 ELSE 1 END, start_time DESC) AS error_trace_id
FROM (SELECT *, span_weight(trace_state, attributes['sampling.probability']) AS weight FROM spans)
GROUP BY 1, 2, 3;

-- The duration histogram behind span_metrics: per service, operation and minute, the
-- weighted count of spans in each bucket of OpenTelemetry's default bounds (le_ms, the
-- bucket's upper bound in milliseconds, infinite for the last), the running total over
-- the buckets, and the trace of the bucket's slowest span.
CREATE VIEW span_duration_histogram AS
SELECT
    minute,
    service_name,
    operation,
    le_ms,
    requests,
    sum(requests) OVER (PARTITION BY minute, service_name, operation ORDER BY le_ms) AS cumulative_requests,
    exemplar_trace_id
FROM (
    SELECT
        date_bin(INTERVAL '1 minute', start_time, TIMESTAMP '1970-01-01T00:00:00Z') AS minute,
        service_name,
        name AS operation,
        CASE
            WHEN duration_ns <= 0 THEN 0.0
            WHEN duration_ns <= 5000000 THEN 5.0
            WHEN duration_ns <= 10000000 THEN 10.0
            WHEN duration_ns <= 25000000 THEN 25.0
            WHEN duration_ns <= 50000000 THEN 50.0
            WHEN duration_ns <= 75000000 THEN 75.0
            WHEN duration_ns <= 100000000 THEN 100.0
            WHEN duration_ns <= 250000000 THEN 250.0
            WHEN duration_ns <= 500000000 THEN 500.0
            WHEN duration_ns <= 750000000 THEN 750.0
            WHEN duration_ns <= 1000000000 THEN 1000.0
            WHEN duration_ns <= 2500000000 THEN 2500.0
            WHEN duration_ns <= 5000000000 THEN 5000.0
            WHEN duration_ns <= 7500000000 THEN 7500.0
            WHEN duration_ns <= 10000000000 THEN 10000.0
            ELSE CAST('Infinity' AS DOUBLE)
        END AS le_ms,
        sum(span_weight(trace_state, attributes['sampling.probability'])) AS requests,
        first_value(trace_id ORDER BY duration_ns DESC) AS exemplar_trace_id
    FROM spans
    GROUP BY 1, 2, 3, 4
);
