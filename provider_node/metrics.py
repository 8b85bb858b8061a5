"""Prometheus metrics of the provider node (article 34: process monitoring), on their own HTTP port.

Every metric lives under ``bidui_``, in base units, counters end in ``_total``, and every label
takes values from a bounded set: modes, outcomes and refusal reasons from fixed sets (anything else
is counted as ``other``), requesters are authenticated department ids, resources the configured ones
(``known_resources``; an unknown id from the network is counted as ``unknown``).

Index age is computed at scrape time, from the index's ``built_at`` and an injectable clock.
"""

from __future__ import annotations

import datetime as _dt
import threading
from collections.abc import Callable, Iterable, Iterator
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from provider_node.config import parse_address

__all__ = [
    "MODES",
    "OUTCOMES",
    "REFUSAL_REASONS",
    "RPC_DURATION_BUCKETS",
    "MetricsServer",
    "NodeMetrics",
    "start_metrics_server",
]

MODES = frozenset({"hashed", "blinded"})
# answered: match bits returned; refused: a check failed; failed: the node could not answer (e.g.
# the audit store); abandoned: a blinded session expired before its second step.
OUTCOMES = frozenset({"answered", "refused", "failed", "abandoned"})
REFUSAL_REASONS = frozenset(
    {
        "unauthenticated",
        "unknown_resource",
        "unknown_key",
        "not_shared",
        "not_granted",
        "mode_not_offered",
        "invalid_argument",
        "batch_too_large",
        "key_version_mismatch",
        "session_expired",
        "rate_limited",
        "quota_exceeded",
        "audit_unavailable",
        "index_unavailable",
        "deadline_exceeded",
        "too_many_sessions",
        "internal",
    }
)
# 1 ms .. 60 s: a single hashed record to a 100k-item blinded batch.
RPC_DURATION_BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)  # fmt: skip
OTHER = "other"
UNKNOWN = "unknown"


def _utcnow() -> _dt.datetime:
    return _dt.datetime.now(_dt.UTC)


class _IndexCollector(Collector):
    """bidui_index_records and bidui_index_age_seconds, age computed at scrape time."""

    def __init__(self, clock: Callable[[], _dt.datetime]) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._indexes: dict[tuple[str, str, str], tuple[int, _dt.datetime]] = {}

    def set(self, labels: tuple[str, str, str], records: int, built_at: _dt.datetime) -> None:
        if built_at.tzinfo is None:
            raise ValueError("built_at must be timezone-aware")
        with self._lock:
            self._indexes[labels] = (records, built_at)

    def remove(self, labels: tuple[str, str, str]) -> None:
        with self._lock:
            self._indexes.pop(labels, None)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        names = ["resource", "key", "mode"]
        records = GaugeMetricFamily(
            "bidui_index_records", "Entries in the loaded match index.", labels=names
        )
        age = GaugeMetricFamily(
            "bidui_index_age_seconds",
            "Seconds since the loaded match index was built from its source.",
            labels=names,
        )
        now = self._clock()
        with self._lock:
            items = list(self._indexes.items())
        for labels, (count, built_at) in items:
            records.add_metric(list(labels), count)
            age.add_metric(list(labels), max(0.0, (now - built_at).total_seconds()))
        yield records
        yield age

    def describe(self) -> Iterable[GaugeMetricFamily]:
        return []


class NodeMetrics:
    """The node's metrics, registered in ``registry`` (tests pass a fresh ``CollectorRegistry``)."""

    def __init__(
        self,
        registry: CollectorRegistry,
        *,
        known_resources: Iterable[str] | None = None,
        clock: Callable[[], _dt.datetime] = _utcnow,
    ) -> None:
        self._known_resources = frozenset(known_resources) if known_resources is not None else None
        labels = ["requester", "resource", "mode", "outcome"]
        self.comparisons = Counter(
            "bidui_comparisons_total",
            "Comparisons answered or refused (one per audit record).",
            labels,
            registry=registry,
        )
        self.comparison_items = Counter(
            "bidui_comparison_items_total",
            "Items (records) in comparisons.",
            labels,
            registry=registry,
        )
        self.comparison_matches = Counter(
            "bidui_comparison_matches_total",
            "Items that matched the provider's index.",
            ["requester", "resource", "mode"],
            registry=registry,
        )
        self.refusals = Counter(
            "bidui_refusals_total", "Requests refused, by reason.", ["reason"], registry=registry
        )
        self.rpc_duration = Histogram(
            "bidui_rpc_duration_seconds",
            "Duration of gRPC calls handled by the node.",
            ["method"],
            buckets=RPC_DURATION_BUCKETS,
            registry=registry,
        )
        self.audit_failures = Counter(
            "bidui_audit_failures_total",
            "Audit records that could not be committed (the comparison was not answered).",
            registry=registry,
        )
        self._indexes = _IndexCollector(clock)
        registry.register(self._indexes)

    def _resource(self, resource: str) -> str:
        if self._known_resources is not None and resource not in self._known_resources:
            return UNKNOWN
        return resource

    @staticmethod
    def _mode(mode: str) -> str:
        return mode if mode in MODES else OTHER

    def record_comparison(
        self,
        requester: str,
        resource: str,
        mode: str,
        outcome: str,
        *,
        items: int = 0,
        matches: int = 0,
    ) -> None:
        """Count one comparison (whatever its number of RPCs) with its items and matches."""
        labels = (
            requester or UNKNOWN,
            self._resource(resource),
            self._mode(mode),
            outcome if outcome in OUTCOMES else OTHER,
        )
        self.comparisons.labels(*labels).inc()
        if items:
            self.comparison_items.labels(*labels).inc(items)
        if matches:
            self.comparison_matches.labels(*labels[:3]).inc(matches)

    def record_refusal(self, reason: str) -> None:
        self.refusals.labels(reason if reason in REFUSAL_REASONS else OTHER).inc()

    def record_audit_failure(self) -> None:
        self.audit_failures.inc()

    def observe_rpc(self, method: str, seconds: float) -> None:
        """``method`` is a gRPC method name from the service descriptors (a bounded set)."""
        self.rpc_duration.labels(method).observe(seconds)

    def set_index(
        self, resource: str, key: str, mode: str, records: int, built_at: _dt.datetime
    ) -> None:
        self._indexes.set((resource, key, mode), records, built_at)

    def remove_index(self, resource: str, key: str, mode: str) -> None:
        self._indexes.remove((resource, key, mode))


class MetricsServer:
    """A running ``/metrics`` HTTP endpoint; ``shutdown()`` stops it and frees the port."""

    def __init__(self, server: WSGIServer, thread: threading.Thread) -> None:
        self._server = server
        self._thread = thread

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def shutdown(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def start_metrics_server(address: str, registry: CollectorRegistry) -> tuple[MetricsServer, int]:
    """Serve ``registry`` at ``http://address/metrics`` from a daemon thread.

    ``address`` is ``host:port`` (``[v6]:port`` for IPv6); port 0 picks a free port, which is
    returned. Raises ``OSError`` when the address cannot be bound, ``ValueError`` when malformed.
    """
    host, port = parse_address(address)
    # prometheus_client picks the address family from the host (IPv6 too) and logs no requests.
    server, thread = start_http_server(port, addr=host, registry=registry)
    handle = MetricsServer(server, thread)
    return handle, handle.port
