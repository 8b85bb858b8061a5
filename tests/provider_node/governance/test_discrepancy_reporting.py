"""Discrepancy reports (article 26) as the compliance officer sees them, on SQLite and PostgreSQL:
``bidui_discrepancies_*`` read from the database at scrape time, and the quarterly report's
section (filed, answered, on time, pending and overdue at the quarter's end)."""

from __future__ import annotations

import io
import logging
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy.orm import Session, sessionmaker

from provider_node.audit.log import AuditLog
from provider_node.audit.records import AuditEntry
from provider_node.governance import discrepancies
from provider_node.governance.report import build_report
from provider_node.identity.auth import Caller
from provider_node.observability.metrics import NodeMetrics
from provider_node.store.engine import make_engine, session_factory

CHINA = timezone(timedelta(hours=8))
DEPARTMENT = "luzhou-civil-affairs"
OPERATOR = "luzhou-psb"
DOUBT = "a description no report may show"


class Node:
    """Comparisons, reports and answers at chosen times: the audit clock and ``now`` agree."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.now = datetime(2025, 12, 1, 10, 0, tzinfo=CHINA)
        self.audit = AuditLog(sessions, clock=lambda: self.now)
        self.desk = discrepancies.DiscrepancyDesk(self.audit, clock=lambda: self.now)

    def at(self, month: int, day: int, hour: int = 10) -> Node:
        self.now = datetime(2025, month, day, hour, 0, tzinfo=CHINA)
        return self

    def report(self) -> str:
        comparison_id = self.audit.append(
            AuditEntry(
                action="comparison",
                outcome="answered",
                status_code="OK",
                requester=DEPARTMENT,
                resource_id="residents",
                item_count=5,
            )
        )
        caller = Caller(DEPARTMENT, "ab" * 32)
        return self.desk.file(caller, comparison_id, [0, 4], DOUBT).id

    def confirm(self, report_id: str) -> None:
        discrepancies.confirm(self.audit, report_id, operator=OPERATOR, now=self.now)

    def reject(self, report_id: str) -> None:
        discrepancies.reject(self.audit, report_id, "checked", operator=OPERATOR, now=self.now)


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def test_pending_overdue_and_answered_are_read_at_scrape_time(
    sessions: sessionmaker[Session],
) -> None:
    node = Node(sessions)
    # Friday 12-05: 5 working days later is Friday 12-12.
    on_time, late, _, _ = (node.at(12, 5).report() for _ in range(4))
    node.at(12, 12, 18).confirm(on_time)
    node.at(12, 15).reject(late)
    node.at(12, 15).report()  # due 12-22
    registry = CollectorRegistry()
    NodeMetrics(registry, clock=lambda: node.now).track_discrepancies(sessions)
    assert sample(registry, "bidui_discrepancies_pending") == 3
    assert sample(registry, "bidui_discrepancies_overdue") == 2
    assert sample(registry, "bidui_discrepancies_answered_total", deadline="met") == 1
    assert sample(registry, "bidui_discrepancies_answered_total", deadline="missed") == 1
    assert sample(registry, "bidui_discrepancies_scrape_errors_total") == 0


def test_an_absent_database_is_counted_and_warned_about_as_reports(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'no-such-directory' / 'audit.db'}")
    registry = CollectorRegistry()
    NodeMetrics(registry).track_discrepancies(session_factory(engine))
    try:
        with caplog.at_level(logging.WARNING, logger="provider_node"):
            assert sample(registry, "bidui_discrepancies_scrape_errors_total") == 1
    finally:
        engine.dispose()
    assert sample(registry, "bidui_discrepancies_pending") is None
    assert "read the discrepancy reports for the metrics" in caplog.records[0].getMessage()


def test_the_quarterly_report_counts_reports_filed_and_answered(
    sessions: sessionmaker[Session],
) -> None:
    node = Node(sessions)
    node.at(9, 29).report()  # Q3, never answered: pending and overdue at the quarter's end
    earlier = node.at(9, 30).report()  # Q3, answered in the quarter (late)
    on_time = node.at(12, 1).report()
    node.at(12, 30).report()  # due in January: pending at the quarter's end, not overdue
    overdue = node.at(12, 5).report()  # due 12-12
    node.at(12, 3).confirm(on_time)
    node.at(10, 20).reject(earlier)
    node.now = datetime(2026, 1, 5, 10, 0, tzinfo=CHINA)
    node.confirm(overdue)  # after the quarter: still pending (and overdue) at its end

    report = build_report(
        node.audit, "2025Q4", OPERATOR, now=datetime(2026, 2, 1, tzinfo=UTC), lang="en"
    )
    page = io.StringIO()
    report.write_text(page)
    section = page.getvalue().split("discrepancy reports (article 26)")[1].split("\n\n")[0]
    lines = [line.split() for line in section.strip().splitlines()]
    assert lines == [
        ["reports", "of", "doubted", "results", "filed", "3"],
        ["reports", "answered", "2"],
        ["within", "5", "working", "days", "(on", "time)", "1", "(50.0%", "of", "those",
         "answered)"],
        ["reports", "pending", "3", "(at", "2026-01-01", "00:00)"],
        ["past", "their", "deadline", "(overdue)", "2"],
    ]  # fmt: skip
    other = page.getvalue().split("other audited actions")[1]
    assert "discrepancy" not in other and DOUBT not in page.getvalue()
