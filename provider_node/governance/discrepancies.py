"""Discrepancy reports as governance actions (article 26): file, then confirm, correct or reject.

Departments file over gRPC (``DiscrepancyDesk``, behind ``DiscrepancyService``) against their own
comparisons, within 3 working days of each; the provider's operator answers on the node's own
machine (``confirm``, ``correct``, ``reject``, behind ``bidui provider discrepancies``) within 5
working days of the report. Every one of these is an audit record committed in the same
transaction as the change it describes (``AuditLog.append_action``)::

    discrepancy_report   requester: the department; related_id: the comparison; comparison_id:
                         the report's own id; payload_sha256: SHA-256 of what was reported
    discrepancy_answer   requester: the department it concerns; related_id: the report's id;
                         the reason names the operator, the verdict, whether it came on time and,
                         for a correction, the index refresh

The rules (deadlines, positions, who may report what) are
``provider_node.governance.discrepancy_records``'.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import uuid
from collections.abc import Callable, Iterable

from sqlalchemy.orm import Session

from provider_node.audit.log import AuditLog
from provider_node.audit.records import AuditEntry
from provider_node.core import errors
from provider_node.core.vocabulary import Action
from provider_node.core.workdays import china_date
from provider_node.governance import discrepancy_records as records
from provider_node.governance.discrepancy_records import ReportStatus
from provider_node.identity.auth import Caller
from provider_node.store.models import DiscrepancyReport

__all__ = ["DiscrepancyDesk", "ReportStatus", "confirm", "correct", "reject"]


class DiscrepancyDesk:
    """What a department may do about results it doubts; thread-safe."""

    def __init__(
        self,
        audit: AuditLog,
        *,
        clock: Callable[[], _dt.datetime] = lambda: _dt.datetime.now(_dt.UTC),
    ) -> None:
        self._audit = audit
        self._clock = clock

    def file(
        self, caller: Caller, comparison_id: str, positions: Iterable[int], description: str
    ) -> DiscrepancyReport:
        """Record a report on one of the caller's comparisons, due for an answer within 5 working
        days; audited with a digest of what was reported."""
        now = self._clock()
        places = list(positions)
        report_id = str(uuid.uuid4())

        def act(session: Session) -> tuple[DiscrepancyReport, AuditEntry]:
            report = records.file_report(
                session,
                caller.department,
                comparison_id,
                places,
                description,
                now,
                report_id=report_id,
            )
            session.expunge(report)
            return report, AuditEntry.answered(
                Action.DISCREPANCY_REPORT,
                requester=caller.department,
                cert_fingerprint=caller.cert_fingerprint,
                cert_serial=caller.cert_serial,
                related_id=report.comparison_id,
                resource_id=report.resource_id,
                item_count=len(report.positions),
                payload_sha256=_digest(report),
                reason=(
                    f"report {report.id}: {len(report.positions)} results of comparison "
                    f"{report.comparison_id} doubted; answer due {report.answer_deadline}"
                ),
                comparison_id=report.id,
            )

        return self._audit.append_made(act)

    def report(self, caller: Caller, report_id: str) -> DiscrepancyReport:
        """The caller's own report; another's is reported as missing."""
        report = self._audit.read(lambda session: records.get_report(session, report_id))
        if report.department != caller.department:
            raise errors.UnknownRecordError(f"no discrepancy report {report_id} on this node")
        return report

    def reports(self, caller: Caller, comparison_id: str = "") -> list[DiscrepancyReport]:
        """The caller's reports, oldest first (on ``comparison_id`` only, if given). Reads take
        no write lock (``AuditLog.read``)."""
        return self._audit.read(
            lambda session: records.list_reports(
                session, department=caller.department, comparison_id=comparison_id or None
            )
        )


def confirm(
    audit: AuditLog,
    report_id: str,
    *,
    operator: str,
    now: _dt.datetime,
    note: str | None = None,
) -> DiscrepancyReport:
    """The doubted results were wrong, and are not corrected yet (``note``: what follows)."""
    return _answer(audit, report_id, ReportStatus.CONFIRMED, operator, now, note=note)


def correct(
    audit: AuditLog,
    report_id: str,
    index_load_id: str,
    *,
    operator: str,
    now: _dt.datetime,
    note: str | None = None,
) -> DiscrepancyReport:
    """The doubted results were wrong and the index refresh ``index_load_id`` (the audit record id
    of an ``index_load`` of the resource after the comparison) corrected them."""
    return _answer(
        audit,
        report_id,
        ReportStatus.CORRECTED,
        operator,
        now,
        note=note,
        correction_id=index_load_id,
    )


def reject(
    audit: AuditLog, report_id: str, reason: str, *, operator: str, now: _dt.datetime
) -> DiscrepancyReport:
    """The doubted results stand; the ``reason`` is mandatory and must not be blank."""
    return _answer(audit, report_id, ReportStatus.REJECTED, operator, now, note=reason)


def _answer(
    audit: AuditLog,
    report_id: str,
    verdict: ReportStatus,
    operator: str,
    now: _dt.datetime,
    *,
    note: str | None = None,
    correction_id: str | None = None,
) -> DiscrepancyReport:
    def act(session: Session) -> tuple[DiscrepancyReport, AuditEntry]:
        report = records.answer_report(
            session, report_id, verdict, operator, now, note=note, correction_id=correction_id
        )
        session.expunge(report)
        on_time = "on time" if china_date(now) <= report.answer_deadline else "late"
        what = f"report {report.id} {verdict.value} {on_time}"
        if report.correction_id:
            what += f" by index refresh {report.correction_id}"
        if report.answer:
            what += f": {report.answer}"
        return report, AuditEntry.answered(
            Action.DISCREPANCY_ANSWER,
            # The operator's name goes with the reason: the requester column is the department's.
            requester=report.department,
            related_id=report.id,
            resource_id=report.resource_id,
            item_count=len(report.positions),
            reason=f"by {operator}: {what}"[:300],
        )

    return audit.append_made(act)


def _digest(report: DiscrepancyReport) -> str:
    """SHA-256 of what was reported, so the log fixes it without holding the text."""
    content = [report.comparison_id, report.positions, report.description]
    data = json.dumps(content, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(data.encode("utf-8")).hexdigest()
