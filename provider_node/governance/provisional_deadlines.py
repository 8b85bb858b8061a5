"""Deadlines counted past the working-day calendar's end, settled once the calendar knows the year.

An application or a discrepancy report is never refused because the calendar lacks a year: its
deadline is counted provisionally (``workdays.working_deadline``: weekdays less the fixed-date
statutory holidays) and marked so. When the node starts with a calendar that covers those days
(the operator added the State Council's notice to ``[[calendar.years]]``, or a newer
``chinese-calendar`` package), ``settle`` recounts them exactly and clears the mark, in one audited
transaction.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from provider_node.audit.log import AuditLog
from provider_node.audit.records import AuditEntry
from provider_node.core.vocabulary import Action
from provider_node.core.workdays import china_date, working_deadline
from provider_node.governance.discrepancy_records import ANSWER_WORKING_DAYS, REPORT_WORKING_DAYS
from provider_node.governance.grants import DECISION_WORKING_DAYS
from provider_node.store.models import Application, DiscrepancyReport

__all__ = ["settle"]


def settle(audit: AuditLog, *, operator: str) -> tuple[int, int]:
    """Recount every provisional deadline the calendar now covers; returns (applications,
    discrepancy reports) settled. Audited as one ``deadline_recomputation`` record naming the
    changed deadlines, when there are any."""

    def act(session: Session) -> AuditEntry | None:
        changes: list[str] = []
        for application in session.scalars(
            select(Application).where(Application.deadline_provisional.is_(True))
        ):
            exact = working_deadline(application.submitted_at, DECISION_WORKING_DAYS)
            if not exact.provisional:
                was = application.decision_deadline
                changes.append(f"application {application.id}: {was} -> {exact.day}")
                application.decision_deadline = exact.day
                application.deadline_provisional = False
        settled_applications = len(changes)
        for report in session.scalars(
            select(DiscrepancyReport).where(DiscrepancyReport.deadlines_provisional.is_(True))
        ):
            reporting = working_deadline(china_date(report.compared_at), REPORT_WORKING_DAYS)
            answering = working_deadline(report.filed_at, ANSWER_WORKING_DAYS)
            if not (reporting.provisional or answering.provisional):
                was = report.answer_deadline
                changes.append(f"report {report.id}: answer by {was} -> {answering.day}")
                report.report_deadline = reporting.day
                report.answer_deadline = answering.day
                report.deadlines_provisional = False
        counts[:] = [settled_applications, len(changes) - settled_applications]
        if not changes:
            return None
        listed = "; ".join(changes)
        return AuditEntry.answered(
            Action.DEADLINE_RECOMPUTATION,
            requester=operator,
            item_count=len(changes),
            reason=f"provisional deadlines recounted on the announced calendar: {listed}"[:4000],
        )

    counts = [0, 0]
    audit.append_unless(act)
    return counts[0], counts[1]
