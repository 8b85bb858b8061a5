"""Prometheus metrics of the provider node (article 34: process monitoring), on their own HTTP port.

Every metric lives under ``bidui_``, in base units, counters end in ``_total``, and every label
takes values from a bounded set: modes, outcomes and refusal reasons from fixed sets (anything else
is counted as ``other``), requesters are authenticated department ids, resources the configured ones
(``known_resources``; an unknown id from the network is counted as ``unknown``).

Index age is computed at scrape time, from the index's ``built_at`` and an injectable clock; so are
the applications (article 25), read from the database by ``ApplicationsCollector``::

    bidui_applications_pending                   awaiting a decision
    bidui_applications_overdue                   of those, past their 5-working-day deadline
    bidui_applications_decided_total{deadline}   decided ever, "met" or "missed" their deadline
    bidui_applications_scrape_errors_total       reads of those that failed or timed out

and the discrepancy reports (article 26), by ``DiscrepanciesCollector``::

    bidui_discrepancies_pending                  reports of doubted results awaiting an answer
    bidui_discrepancies_overdue                  of those, past their 5-working-day deadline
    bidui_discrepancies_answered_total{deadline} answered ever, "met" or "missed" their deadline
    bidui_discrepancies_scrape_errors_total      reads of those that failed or timed out

A scrape never waits on the database for long: see ``scraped.ScrapedCounts``.
"""

from __future__ import annotations

import datetime as _dt
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy.orm import Session, sessionmaker

from provider_node import errors, grants
from provider_node.config import parse_address
from provider_node.discrepancy_records import DiscrepancyCounts, report_counts
from provider_node.scraped import ScrapedCounts, snapshot_reader

__all__ = [
    "ANSWERS",
    "MODES",
    "OUTCOMES",
    "REFUSAL_REASONS",
    "RPC_DURATION_BUCKETS",
    "ApplicationsCollector",
    "DiscrepanciesCollector",
    "MetricsServer",
    "MetricsTls",
    "NodeMetrics",
    "start_metrics_server",
]

MODES = frozenset({"hashed", "blinded"})
ANSWERS = frozenset({"match", "verify", "count"})
VERDICTS = frozenset({"not_found", "consistent", "inconsistent"})
# answered: match bits returned; refused: a check failed; failed: the node could not answer (e.g.
# the audit store); abandoned: a blinded session expired before its second step.
OUTCOMES = frozenset({"answered", "refused", "failed", "abandoned"})
# Every error the node refuses or fails a request with names its reason in provider_node.errors (a
# GrantRefusal's is one of GrantRefusalReason): each is a label of its own without an edit here.
REFUSAL_REASONS = frozenset(
    {
        error.reason
        for error in vars(errors).values()
        if isinstance(error, type) and issubclass(error, errors.NodeError)
    }
    | {why.value for why in errors.GrantRefusalReason}
    | {"unknown_key", "index_unavailable", "deadline_exceeded"}
)
# 1 ms .. 60 s: a single hashed record to a 100k-item blinded batch.
RPC_DURATION_BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)  # fmt: skip
OTHER = "other"
STORE_DOWN_WINDOW = _dt.timedelta(seconds=30)
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


#: The counts of applications on a date in China (``grants.application_counts``).
ApplicationCountsReader = Callable[[_dt.date], grants.ApplicationCounts]


def application_counts_reader(
    sessions: sessionmaker[Session], *, statement_timeout: float = 5.0
) -> ApplicationCountsReader:
    """``grants.application_counts`` in a read-only snapshot that blocks no writer; on PostgreSQL
    cancelled after ``statement_timeout`` seconds (a SQLite reader never waits for a writer)."""
    return snapshot_reader(sessions, grants.application_counts, statement_timeout=statement_timeout)


class ApplicationsCollector(ScrapedCounts[grants.ApplicationCounts]):
    """bidui_applications_*, read with ``read`` at scrape time: a scrape waits for the database
    ``wait_seconds`` at most, and failed reads are counted in
    ``bidui_applications_scrape_errors_total`` (``scraped.ScrapedCounts``)."""

    subject = "applications"
    errors_metric = (
        "bidui_applications_scrape_errors",
        "Reads of the applications for the bidui_applications_* metrics that failed or were "
        "cancelled for taking too long.",
    )
    empty = grants.ApplicationCounts(0, 0, 0, 0)

    def families(self, counts: grants.ApplicationCounts) -> Iterator[Metric]:
        return _application_families(counts)


class DiscrepanciesCollector(ScrapedCounts[DiscrepancyCounts]):
    """bidui_discrepancies_*, read at scrape time like the applications (article 26)."""

    subject = "discrepancy reports"
    errors_metric = (
        "bidui_discrepancies_scrape_errors",
        "Reads of the discrepancy reports for the bidui_discrepancies_* metrics that failed or "
        "were cancelled for taking too long.",
    )
    empty = DiscrepancyCounts(0, 0, 0, 0, 0)

    def families(self, counts: DiscrepancyCounts) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "bidui_discrepancies_pending",
            "Reports of doubted results awaiting the provider's answer (article 26).",
            value=counts.pending,
        )
        yield GaugeMetricFamily(
            "bidui_discrepancies_overdue",
            "Reports of doubted results still unanswered after their deadline of 5 working days.",
            value=counts.overdue,
        )
        answered = CounterMetricFamily(
            "bidui_discrepancies_answered",
            "Reports of doubted results answered, by whether the answer met its deadline of 5 "
            "working days (article 26).",
            labels=["deadline"],
        )
        answered.add_metric(["met"], counts.answered_on_time)
        answered.add_metric(["missed"], counts.answered - counts.answered_on_time)
        yield answered


def _application_families(counts: grants.ApplicationCounts) -> Iterator[Metric]:
    yield GaugeMetricFamily(
        "bidui_applications_pending",
        "Applications for conditional sharing awaiting the provider's decision (article 25).",
        value=counts.pending,
    )
    yield GaugeMetricFamily(
        "bidui_applications_overdue",
        "Applications still awaiting a decision after their deadline of 5 working days.",
        value=counts.overdue,
    )
    decided = CounterMetricFamily(
        "bidui_applications_decided",
        "Applications approved or refused, by whether the decision met its deadline of 5 working "
        "days (article 25).",
        labels=["deadline"],
    )
    decided.add_metric(["met"], counts.decided_on_time)
    decided.add_metric(["missed"], counts.decided - counts.decided_on_time)
    yield decided


class NodeMetrics:
    """The node's metrics, registered in ``registry`` (tests pass a fresh ``CollectorRegistry``)."""

    def __init__(
        self,
        registry: CollectorRegistry,
        *,
        known_resources: Iterable[str] | None = None,
        clock: Callable[[], _dt.datetime] = _utcnow,
    ) -> None:
        self._registry = registry
        self._clock = clock
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
        # Not per requester: with one department's single-record query the only activity, a
        # per-requester match count would tell its result to whoever can read /metrics.
        self.comparison_matches = Counter(
            "bidui_comparison_matches_total",
            "Items that matched the provider's index, per resource and mode.",
            ["resource", "mode"],
            registry=registry,
        )
        # Answers and verification outcomes per resource and mode only, never per requester: a
        # department's single-record verification would otherwise be readable from /metrics.
        self.answers = Counter(
            "bidui_answers_total",
            "Comparisons answered, per answer: match bits, verification, count only.",
            ["resource", "mode", "answer"],
            registry=registry,
        )
        self.verified_records = Counter(
            "bidui_verified_records_total",
            "Records verified, per outcome: not_found, consistent, inconsistent.",
            ["resource", "mode", "outcome"],
            registry=registry,
        )
        self.verification_mismatches = Counter(
            "bidui_verification_mismatches_total",
            "Fields that disagreed in verifications, per field.",
            ["resource", "field"],
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
        # For alerting: 0 while audit writes have failed within the last STORE_DOWN_WINDOW.
        self._last_audit_failure: _dt.datetime | None = None
        store_up = Gauge(
            "bidui_audit_store_up",
            "1 if no audit write failed in the last 30 s; 0 means comparisons are being refused.",
            registry=registry,
        )
        store_up.set_function(self._store_up)

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
            self.comparison_matches.labels(*labels[1:3]).inc(matches)

    def record_answer(
        self,
        resource: str,
        mode: str,
        answer: str,
        *,
        verdicts: Mapping[str, int] | None = None,
        mismatched: Mapping[str, int] | None = None,
    ) -> None:
        """Count one answered comparison by its answer; a verification's records per outcome
        (``verdicts``) and disagreeing fields (``mismatched``, names from the configuration)."""
        resource, mode = self._resource(resource), self._mode(mode)
        self.answers.labels(resource, mode, answer if answer in ANSWERS else OTHER).inc()
        for verdict, count in (verdicts or {}).items():
            if count:
                label = verdict if verdict in VERDICTS else OTHER
                self.verified_records.labels(resource, mode, label).inc(count)
        for field, count in (mismatched or {}).items():
            if count and resource != UNKNOWN:
                self.verification_mismatches.labels(resource, field).inc(count)

    def record_refusal(self, reason: str) -> None:
        self.refusals.labels(reason if reason in REFUSAL_REASONS else OTHER).inc()

    def record_audit_failure(self) -> None:
        self.audit_failures.inc()
        self._last_audit_failure = self._clock()

    def _store_up(self) -> float:
        last = self._last_audit_failure
        return 0.0 if last is not None and self._clock() - last < STORE_DOWN_WINDOW else 1.0

    def observe_rpc(self, method: str, seconds: float) -> None:
        """``method`` is a gRPC method name from the service descriptors (a bounded set)."""
        self.rpc_duration.labels(method).observe(seconds)

    def set_index(
        self, resource: str, key: str, mode: str, records: int, built_at: _dt.datetime
    ) -> None:
        self._indexes.set((resource, key, mode), records, built_at)

    def remove_index(self, resource: str, key: str, mode: str) -> None:
        self._indexes.remove((resource, key, mode))

    def track_handshake_failures(self, counts: Callable[[], Mapping[str, int]]) -> None:
        """Export ``bidui_tls_handshake_failures_total{reason}`` from ``counts`` (kept by the
        operations log's reader of grpc's core, which starts before the node's metrics)."""
        self._registry.register(
            _CountsCollector(
                "bidui_tls_handshake_failures",
                "TLS handshakes refused by grpc's mutual TLS (never an RPC, never audited).",
                "reason",
                counts,
            )
        )

    def track_applications(self, sessions: sessionmaker[Session]) -> ApplicationsCollector:
        """Export the applications in ``sessions``' database, read at scrape time (article 25)."""
        collector = ApplicationsCollector(application_counts_reader(sessions), clock=self._clock)
        self._registry.register(collector)
        return collector

    def track_discrepancies(self, sessions: sessionmaker[Session]) -> DiscrepanciesCollector:
        """Export the discrepancy reports in ``sessions``' database, read at scrape time
        (article 26)."""
        read = snapshot_reader(sessions, report_counts)
        collector = DiscrepanciesCollector(read, clock=self._clock)
        self._registry.register(collector)
        return collector


class _CountsCollector(Collector):
    """A counter family read from a mapping kept elsewhere (e.g. before the registry existed)."""

    def __init__(self, name: str, documentation: str, label: str, read: Callable[[], Any]) -> None:
        self._name, self._documentation, self._label, self._read = name, documentation, label, read

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(self._name, self._documentation, labels=[self._label])
        for value, count in sorted(self._read().items()):
            family.add_metric([value], count)
        yield family


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


@dataclass(frozen=True)
class MetricsTls:
    """Serve /metrics over TLS to scrapers holding a client certificate from ``client_ca``."""

    certfile: Path
    keyfile: Path
    client_ca: Path


def start_metrics_server(
    address: str, registry: CollectorRegistry, *, tls: MetricsTls | None = None
) -> tuple[MetricsServer, int]:
    """Serve ``registry`` at ``http(s)://address/metrics`` from a daemon thread.

    ``address`` is ``host:port`` (``[v6]:port`` for IPv6); port 0 picks a free port, which is
    returned. Raises ``OSError`` when the address cannot be bound, ``ValueError`` when malformed.
    With ``tls``, prometheus_client's own TLS server requires a client certificate.
    """
    host, port = parse_address(address)
    secure: dict[str, Any] = {}
    if tls is not None:
        secure = {
            "certfile": str(tls.certfile),
            "keyfile": str(tls.keyfile),
            "client_cafile": str(tls.client_ca),
            "client_auth_required": True,
        }
    # prometheus_client picks the address family from the host (IPv6 too) and logs no requests.
    server, thread = start_http_server(port, addr=host, registry=registry, **secure)
    handle = MetricsServer(server, thread)
    return handle, handle.port
