"""Every Prometheus metric of journeybus, declared once, with its help text.

Label values are bounded: stage names, topic names, reasons and statuses come
from closed sets in the code or the catalogue, never from record content.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60)

# -- stream stages ---------------------------------------------------------------
EVENTS_IN = Counter(
    "journeybus_events_in_total",
    "Records consumed by a stage or the sink, or handled by a source connector (stage: its "
    "name), valid or not: the denominator of the dead-letter rate.",
    ["stage", "topic"],
)
EVENTS_SUPPRESSED = Counter(
    "journeybus_events_suppressed_total",
    "Records not processed on purpose: data of a forgotten customer (reason erased), "
    "received before the erasure or after an opt-out.",
    ["stage", "reason"],
)
EVENTS_OUT = Counter(
    "journeybus_events_out_total", "Records produced by a stage.", ["stage", "topic"]
)
DEAD_LETTERS = Counter(
    "journeybus_dead_letters_total",
    "Records sent to a dead-letter topic, by stage, source topic and reason.",
    ["stage", "topic", "reason"],
)
DEAD_LETTER_HALTS = Counter(
    "journeybus_dead_letter_halts_total",
    "Times a stage halted because its dead-letter rate exceeded the limit.",
    ["stage"],
)
STAGE_ERRORS = Counter(
    "journeybus_stage_errors_total",
    "Unexpected exceptions caught in a stage, by where: a record (dead-lettered as "
    "internal_error) or a timer (skipped for the batch).",
    ["stage", "where"],
)
SIDE_INPUT_SKIPPED = Counter(
    "journeybus_side_input_skipped_total",
    "Records a side input could not apply (undecodable, or its lookup raised), by topic; "
    "the stage that owns the topic dead-letters what is invalid.",
    ["topic", "reason"],
)
LOG_CHANGES = Counter(
    "journeybus_log_changes_total",
    "Times a consumer that keeps its own offsets found its input to be another log than "
    "its offsets were committed against (a broker that lost its log, a recreated topic), "
    "and read the new log from its beginning.",
    ["consumer", "topic"],
)
STATE_RESTORED = Counter(
    "journeybus_state_restored_total",
    "State changes a stage applied from its changelogs when it was assigned partitions "
    "whose local state was missing or behind.",
    ["stage"],
)
OFFSETS_SKIPPED = Counter(
    "journeybus_offsets_skipped_total",
    "Offsets a stage's consumer jumped over within a partition (records it never saw); "
    "should stay 0: journeybus topics are neither compacted nor transactional.",
    ["stage", "topic"],
)
BATCH_SIZE = Histogram(
    "journeybus_stage_batch_size",
    "Records per processed batch.",
    ["stage"],
    buckets=(1, 10, 50, 100, 500, 1000, 2000, 5000, 10000),
)
BATCH_SECONDS = Histogram(
    "journeybus_stage_batch_seconds",
    "Time to process, produce and commit one batch.",
    ["stage"],
    buckets=LATENCY_BUCKETS,
)
PROCESSING_LATENCY = Histogram(
    "journeybus_processing_latency_seconds",
    "Time from a record's broker timestamp to its batch commit.",
    ["stage"],
    buckets=LATENCY_BUCKETS,
)
CONSUMER_LAG = Gauge(
    "journeybus_consumer_lag",
    "Records behind the log end per partition (approximate on the embedded broker).",
    ["stage", "topic", "partition"],
)
ASSIGNED_PARTITIONS = Gauge(
    "journeybus_assigned_partitions", "Input partitions assigned to this process.", ["stage"]
)

# -- DuckDB sink ---------------------------------------------------------------------
SINK_BATCH_ROWS = Histogram(
    "journeybus_sink_batch_rows",
    "Rows upserted per sink transaction.",
    buckets=(1, 10, 100, 1000, 5000, 10000, 20000, 50000),
)
SINK_COMMIT_SECONDS = Histogram(
    "journeybus_sink_commit_seconds",
    "Time to decode, upsert and commit one sink batch.",
    buckets=LATENCY_BUCKETS,
)
SINK_SNAPSHOT_SECONDS = Histogram(
    "journeybus_sink_snapshot_seconds",
    "Time to publish the read snapshot.",
    buckets=LATENCY_BUCKETS,
)
FRESHNESS = Histogram(
    "journeybus_freshness_seconds",
    "End-to-end freshness: newest event time of a batch to its sink commit.",
    buckets=(*LATENCY_BUCKETS, 120, 300, 600, 3600),
)

# -- connectors ------------------------------------------------------------------------
CONNECTOR_RECORDS = Counter(
    "journeybus_connector_records_total",
    "Records a source connector published and the broker acknowledged, by topic.",
    ["connector", "topic"],
)
CONNECTOR_POLLS = Counter(
    "journeybus_connector_polls_total",
    "Polls of a polling source, by result: records, empty or retriable (system unavailable).",
    ["connector", "result"],
)
COLLECTOR_REQUESTS = Counter(
    "journeybus_collector_requests_total",
    "HTTP requests answered by the collector, by route and status code.",
    ["route", "status"],
)
COLLECTOR_DUPLICATES = Counter(
    "journeybus_collector_duplicates_total",
    "Events the collector recognised as a retry of one it already accepted.",
    ["source"],
)
COLLECTOR_SECONDS = Histogram(
    "journeybus_collector_request_seconds",
    "Time from request to response, acknowledgement by the broker included.",
    ["route"],
    buckets=LATENCY_BUCKETS,
)
