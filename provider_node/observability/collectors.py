"""The node's metrics computed at scrape time, not counted as the node works.

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

A scrape never waits on the database for long: see ``scraped.ScrapedCounts``. ``NodeMetrics``
(``provider_node.observability.metrics``) registers these collectors.
"""

from __future__ import annotations

import datetime as _dt
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy.orm import Session, sessionmaker

from provider_node.governance.discrepancy_records import DiscrepancyCounts
from provider_node.governance.grant_lookup import ApplicationCounts, application_counts
from provider_node.observability.scraped import ScrapedCounts, snapshot_reader

__all__ = [
    "ApplicationCountsReader",
    "ApplicationsCollector",
    "CountsCollector",
    "DiscrepanciesCollector",
    "IndexCollector",
    "application_counts_reader",
]


class IndexCollector(Collector):
    """bidui_index_records, bidui_index_age_seconds (computed at scrape time), the resource's
    bidui_index_update_period_seconds, and bidui_index_stale: 1 while the index is older than
    its update period (article 8: a stale index answers a false 库无)."""

    def __init__(self, clock: Callable[[], _dt.datetime]) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._indexes: dict[tuple[str, str, str], tuple[int, _dt.datetime, float]] = {}

    def set(
        self,
        labels: tuple[str, str, str],
        records: int,
        built_at: _dt.datetime,
        update_period: float = 0.0,
    ) -> None:
        """``update_period``: seconds the resource promises between refreshes (0: none)."""
        if built_at.tzinfo is None:
            raise ValueError("built_at must be timezone-aware")
        with self._lock:
            self._indexes[labels] = (records, built_at, update_period)

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
        period = GaugeMetricFamily(
            "bidui_index_update_period_seconds",
            "The resource's update period (its catalog update_period), in seconds.",
            labels=names,
        )
        stale = GaugeMetricFamily(
            "bidui_index_stale",
            "1 while the loaded index is older than its resource's update period.",
            labels=names,
        )
        now = self._clock()
        with self._lock:
            items = list(self._indexes.items())
        for labels, (count, built_at, update_period) in items:
            seconds = max(0.0, (now - built_at).total_seconds())
            records.add_metric(list(labels), count)
            age.add_metric(list(labels), seconds)
            if update_period:
                period.add_metric(list(labels), update_period)
                stale.add_metric(list(labels), 1.0 if seconds > update_period else 0.0)
        yield records
        yield age
        yield period
        yield stale

    def describe(self) -> Iterable[GaugeMetricFamily]:
        return []


#: The counts of applications on a date in China (``grant_lookup.application_counts``).
ApplicationCountsReader = Callable[[_dt.date], ApplicationCounts]


def application_counts_reader(
    sessions: sessionmaker[Session], *, statement_timeout: float = 5.0
) -> ApplicationCountsReader:
    """``grant_lookup.application_counts`` in a read-only snapshot that blocks no writer; on
    PostgreSQL cancelled after ``statement_timeout`` seconds (a SQLite reader never waits for a
    writer)."""
    return snapshot_reader(sessions, application_counts, statement_timeout=statement_timeout)


class ApplicationsCollector(ScrapedCounts[ApplicationCounts]):
    """bidui_applications_*, read with ``read`` at scrape time: a scrape waits for the database
    ``wait_seconds`` at most, and failed reads are counted in
    ``bidui_applications_scrape_errors_total`` (``scraped.ScrapedCounts``)."""

    subject = "applications"
    errors_metric = (
        "bidui_applications_scrape_errors",
        "Reads of the applications for the bidui_applications_* metrics that failed or were "
        "cancelled for taking too long.",
    )
    empty = ApplicationCounts(0, 0, 0, 0)

    def families(self, counts: ApplicationCounts) -> Iterator[Metric]:
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


def _application_families(counts: ApplicationCounts) -> Iterator[Metric]:
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


class CountsCollector(Collector):
    """A counter family read from a mapping kept elsewhere (e.g. before the registry existed)."""

    def __init__(self, name: str, documentation: str, label: str, read: Callable[[], Any]) -> None:
        self._name, self._documentation, self._label, self._read = name, documentation, label, read

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(self._name, self._documentation, labels=[self._label])
        for value, count in sorted(self._read().items()):
            family.add_metric([value], count)
        yield family
