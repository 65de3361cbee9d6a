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
