"""Prometheus metrics of the provider node (article 34: process monitoring).

Every metric of the node's own lives under ``bidui_``, in base units, counters end in
``_total``, and every label takes values from a bounded set: modes, outcomes and refusal reasons
from fixed sets (anything else is counted as ``other``), requesters are authenticated department
ids, resources the configured ones (``known_resources``; an unknown id from the network is
counted as ``unknown``). Beside them, prometheus_client's ``process_*`` series: above all
``process_open_fds`` against ``process_max_fds``, which peers without a certificate can fill
(``descriptors``).

``NodeMetrics`` counts as the node works; what is computed at scrape time (index age, the
applications and discrepancy reports read from the database) is in ``metrics_collectors``, and
the ``/metrics`` HTTP endpoint on its own port in ``metrics_server``.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable, Iterable, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector
from sqlalchemy.orm import Session, sessionmaker

from provider_node.core import errors
from provider_node.core.vocabulary import ComparisonMode, Outcome
from provider_node.core.workdays import calendar_end
from provider_node.governance.discrepancy_records import report_counts
from provider_node.observability.collectors import (
    ApplicationsCollector,
    CountsCollector,
    DiscrepanciesCollector,
    IndexCollector,
    application_counts_reader,
)
from provider_node.observability.scraped import snapshot_reader

__all__ = [
    "ANSWERS",
    "MODES",
    "OUTCOMES",
    "REFUSAL_REASONS",
    "RPC_DURATION_BUCKETS",
    "NodeMetrics",
]

MODES = frozenset(ComparisonMode)
ANSWERS = frozenset({"match", "verify", "count"})
VERDICTS = frozenset({"not_found", "consistent", "inconsistent"})
# answered: match bits returned; refused: a check failed; failed: the node could not answer (e.g.
# the audit store); abandoned: a blinded session expired before its second step.
OUTCOMES = frozenset(Outcome) - {Outcome.OPENED}
# Every error the node refuses or fails a request with names its reason in
# provider_node.core.errors (a
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
        ProcessCollector(registry=registry)  # CPU, memory, open and maximum descriptors
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
        self.enumeration_suspected = Counter(
            "bidui_enumeration_suspected_total",
            "Days on which a department's run against a resource looked like an enumeration "
            "(many items, almost none matched).",
            ["requester", "resource"],
            registry=registry,
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
        self._indexes = IndexCollector(clock)
        registry.register(self._indexes)
        # For alerting: 0 while audit writes have failed within the last STORE_DOWN_WINDOW.
        self._last_audit_failure: _dt.datetime | None = None
        store_up = Gauge(
            "bidui_audit_store_up",
            "1 if no audit write failed in the last 30 s; 0 means comparisons are being refused.",
            registry=registry,
        )
        store_up.set_function(self._store_up)
        Gauge(
            "bidui_working_day_calendar_end_timestamp_seconds",
            "When the working-day calendar runs out (China midnight after its last known day): "
            "an application whose deadline falls after it is refused. Alert a month ahead.",
            registry=registry,
        ).set_function(lambda: calendar_end().timestamp())

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

    def record_enumeration_suspected(self, requester: str, resource: str) -> None:
        self.enumeration_suspected.labels(requester or UNKNOWN, self._resource(resource)).inc()

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
        self,
        resource: str,
        key: str,
        mode: str,
        records: int,
        built_at: _dt.datetime,
        update_period: float = 0.0,
    ) -> None:
        """``update_period``: the resource's, in seconds (0: not compared)."""
        self._indexes.set((resource, key, mode), records, built_at, update_period)

    def remove_index(self, resource: str, key: str, mode: str) -> None:
        self._indexes.remove((resource, key, mode))

    def track_handshake_failures(self, counts: Callable[[], Mapping[str, int]]) -> None:
        """Export ``bidui_tls_handshake_failures_total{reason}`` from ``counts`` (kept by the
        operations log's reader of grpc's core, which starts before the node's metrics)."""
        self._registry.register(
            CountsCollector(
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
