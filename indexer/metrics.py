"""Every Prometheus metric the indexer exports, in one place.

One prefix (`audifi_indexer_`), units in names, and only low-cardinality
labels: never a block number, hash or address. One process indexes one chain; once
it knows which, every `audifi_indexer_` sample it exports carries `chain_id`, so the
followers of several chains can share one Prometheus and one dashboard.
"""

from collections.abc import Iterator

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, Info
from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample

PREFIX = "audifi_indexer"

_DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

BUILD_INFO = Info(f"{PREFIX}_build", "Version of the running indexer.")

CHAIN_HEAD_BLOCK = Gauge(f"{PREFIX}_chain_head_block", "Latest block number the node reports.")
INDEXED_BLOCK = Gauge(f"{PREFIX}_indexed_block", "Block number of the stored checkpoint.")
LAG_BLOCKS = Gauge(f"{PREFIX}_lag_blocks", "Chain head minus the checkpoint, in blocks.")
LAG_SECONDS = Gauge(
    f"{PREFIX}_lag_seconds", "Wall clock minus the timestamp of the checkpoint's block."
)
HEAD_AGE_SECONDS = Gauge(
    f"{PREFIX}_head_age_seconds",
    "Seconds since the node's head was last read: grows while the node does not answer "
    "(when the lag in blocks cannot be measured).",
)
LAST_PROGRESS_TIMESTAMP = Gauge(
    f"{PREFIX}_last_progress_timestamp_seconds",
    "Unix time at which the follower last committed or confirmed it is at the head.",
)
TRACKED_CONTRACTS = Gauge(
    f"{PREFIX}_tracked_contracts", "Contracts whose logs are followed.", ["kind"]
)

EVENTS_INDEXED = Counter(
    f"{PREFIX}_events_indexed_total", "Decoded events newly written, by kind.", ["kind"]
)
ROWS_WRITTEN = Counter(f"{PREFIX}_raw_rows_written_total", "Raw event rows inserted.")
QUARANTINED_LOGS = Counter(
    f"{PREFIX}_quarantined_logs_total", "Logs from tracked contracts that did not decode."
)
BATCHES = Counter(f"{PREFIX}_batches_total", "Committed batches, by driver.", ["mode"])
BATCH_DURATION = Histogram(
    f"{PREFIX}_batch_duration_seconds",
    "Wall time of one step: fetch, decode, write.",
    buckets=_DURATION_BUCKETS,
)
DB_WRITE_DURATION = Histogram(
    f"{PREFIX}_db_write_duration_seconds",
    "Time of one write transaction.",
    buckets=_DURATION_BUCKETS,
)
TIME_SPENT = Counter(
    f"{PREFIX}_time_spent_seconds_total",
    "Seconds spent per side, to tell which one binds: node, database or decode.",
    ["side"],
)

RPC_REQUESTS = Counter(
    f"{PREFIX}_rpc_requests_total", "JSON-RPC calls by method and outcome.", ["method", "outcome"]
)
RPC_CALLS = Counter(
    f"{PREFIX}_rpc_calls_total", "JSON-RPC calls sent to nodes (a batch of k counts k)."
)
RPC_LATENCY = Histogram(
    f"{PREFIX}_rpc_latency_seconds",
    "Latency of one HTTP round trip to the node (a batch counts once).",
    buckets=_DURATION_BUCKETS,
)
RPC_RETRIES = Counter(
    f"{PREFIX}_rpc_retries_total", "Requests retried after a retryable fault.", ["reason"]
)
RPC_RATE_LIMITED = Counter(
    f"{PREFIX}_rpc_rate_limited_total",
    "Requests a node refused as too many (HTTP 429 or a rate-limit message).",
)
RPC_ALLOWED_RATE = Gauge(
    f"{PREFIX}_rpc_allowed_calls_per_second",
    "The call rate a rate-limited URL is paced at now, by its position in the settings.",
    ["endpoint"],
)
RPC_HEDGED = Counter(
    f"{PREFIX}_rpc_hedged_total",
    "Requests sent a second time because the first was slow to answer (the first answer won).",
)
GETLOGS_SPLITS = Counter(
    f"{PREFIX}_getlogs_range_splits_total", "eth_getLogs ranges shrunk after a node refused them."
)
STEP_RETRIES = Counter(
    f"{PREFIX}_step_retries_total", "Steps run again after a retryable error.", ["error"]
)

REORGS = Counter(f"{PREFIX}_reorgs_total", "Chain reorganisations handled.")
REORG_DEPTH = Histogram(
    f"{PREFIX}_reorg_depth_blocks",
    "Depth of handled reorganisations.",
    buckets=(1, 2, 3, 5, 8, 13, 21, 34, 64, 128, 256),
)
REORGS_TOO_DEEP = Counter(
    f"{PREFIX}_reorgs_too_deep_total", "Forks found below the reorg window (fatal)."
)

BACKFILL_TARGET_BLOCK = Gauge(f"{PREFIX}_backfill_target_block", "Last block of the backfill.")
BACKFILL_DONE_BLOCKS = Gauge(
    f"{PREFIX}_backfill_done_blocks", "Blocks of the running backfill already committed."
)
BACKFILL_TOTAL_BLOCKS = Gauge(f"{PREFIX}_backfill_total_blocks", "Blocks in the running backfill.")

UP = Gauge(f"{PREFIX}_ready", "1 when /readyz would answer 200, else 0.")

LEADER = Gauge(
    f"{PREFIX}_leader", "1 while this replica holds the chain's leader lease and follows, else 0."
)
ROLE_CHANGES = Counter(
    f"{PREFIX}_role_changes_total", "Times this replica became leader or standby.", ["role"]
)
LEASE_AGE = Gauge(
    f"{PREFIX}_lease_age_seconds", "Seconds since the leader last renewed its lease (leader only)."
)

AUDITED_BLOCK = Gauge(
    f"{PREFIX}_audited_block",
    "Every committed block up to this one was audited once deep enough (the deep pass).",
)
COMMITTED_RANGES = Gauge(
    f"{PREFIX}_committed_ranges",
    "Disjoint block ranges the index has committed (1: no gap since its first block).",
)
AUDIT_BACKLOG_BLOCKS = Gauge(
    f"{PREFIX}_audit_backlog_blocks", "Blocks deep enough to audit that the deep pass has not yet."
)
AUDITED_BLOCKS = Counter(
    f"{PREFIX}_audited_blocks_total", "Committed blocks compared with the chain, by pass.", ["pass"]
)
AUDIT_CALLS = Counter(
    f"{PREFIX}_audit_rpc_calls_total", "JSON-RPC calls the audit made (its request budget)."
)
AUDIT_DISCREPANCIES = Counter(
    f"{PREFIX}_audit_discrepancies_total",
    "Committed blocks the audit found different from the chain, and healed, by kind.",
    ["kind"],
)
STALLED = Gauge(
    f"{PREFIX}_stalled",
    "1 while the checkpoint has not moved although the node's head is ahead (the watchdog).",
)


def rpc_totals() -> tuple[int, int]:
    """(HTTP round trips, JSON-RPC calls) this process made to nodes so far: what a
    provider bills or rate-limits, for the summary an operator reads at the end."""
    round_trips = sum(s.value for s in _samples(RPC_LATENCY) if s.name.endswith("_count"))
    calls = sum(s.value for s in _samples(RPC_CALLS) if s.name.endswith("_total"))
    return int(round_trips), int(calls)


def _samples(metric: Counter | Histogram) -> list[Sample]:
    return [s for family in metric.collect() for s in family.samples]


CHAIN_LABEL = "chain_id"
_chain_label: dict[str, str] = {}


def label_chain(chain_id: int) -> None:
    """From now on, every exported sample of ours names this chain (CHAIN_LABEL)."""
    _chain_label[CHAIN_LABEL] = str(chain_id)


class _ChainLabelled(Collector):
    """The default registry's families, ours with the chain's label added."""

    def collect(self) -> Iterator[Metric]:
        for family in REGISTRY.collect():
            if not _chain_label or not family.name.startswith(PREFIX):
                yield family
                continue
            labelled = Metric(family.name, family.documentation, family.type, family.unit)
            labelled.samples = [
                s._replace(labels={**s.labels, **_chain_label}) for s in family.samples
            ]
            yield labelled


_EXPORTED = CollectorRegistry(auto_describe=False)
_EXPORTED.register(_ChainLabelled())


def exposition() -> bytes:
    """The /metrics body (Prometheus text format)."""
    return generate_latest(_EXPORTED)


def _unknown_until_set(gauge: Gauge) -> Gauge:
    """NaN (unknown) until measured: a process without the thing measured, or before its
    first measurement, must not export a 0 that reads as "no lag"."""
    gauge.set(float("nan"))
    return gauge


# The read replica (AUDIFI_DATABASE_REPLICA_URL), sampled by the daemon (store/replica.py).
DB_REPLICA_LAG_BYTES = _unknown_until_set(
    Gauge(
        f"{PREFIX}_db_replica_lag_bytes",
        "WAL bytes the database replica has not replayed, against the primary's position.",
    )
)
DB_REPLICA_LAG_SECONDS = _unknown_until_set(
    Gauge(
        f"{PREFIX}_db_replica_lag_seconds",
        "0 once the database replica has replayed the primary's WAL; while behind, seconds "
        "since the last commit it replayed (at most that stale; not grown by an idle primary).",
    )
)
DB_REPLICA_LAG_BLOCKS = _unknown_until_set(
    Gauge(
        f"{PREFIX}_db_replica_lag_blocks",
        "Blocks between the primary's checkpoint and the one readers of the replica see.",
    )
)
DB_REPLICA_SAMPLED = _unknown_until_set(
    Gauge(
        f"{PREFIX}_db_replica_last_sample_timestamp_seconds",
        "Unix time of the last measurement of the database replica's lag (0: none yet).",
    )
)
