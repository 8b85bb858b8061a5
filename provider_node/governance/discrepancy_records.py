"""Discrepancy reports as records (article 26): filed on a comparison, answered by the provider.

A requesting department that doubts part of a comparison's result reports it within **3 working
days** of the comparison, naming the comparison (its ``comparison_id``, the id of its audit record),
the 0-based positions of the doubted items within it, and a description. The provider's operator
answers within **5 working days** of the report::

    file_report ─> pending ─┬─ answer CONFIRMED  the doubted results were wrong (not yet corrected)
                            ├─ answer CORRECTED  … and an index refresh corrected them: the answer
                            │                    names that ``index_load`` audit record
                            └─ answer REJECTED   the results stand; the reason is mandatory

An answer is final. What a report may be filed against is read from the audit log alone: the
comparison's record gives its time, its requester, its resource and its item count. Only a
comparison answered to the department itself is reportable; another department's is reported as
missing (NOT_FOUND), so a report tells no one whose comparison an id is.

The description says what seems wrong in words, never with record values: a run of six or more
digits (an identity number, a phone number, a credit code, a compact date) is refused, because the
requester's records are not the provider's to keep.

Each function takes a ``Session``; the caller owns the transaction and audits the action
(``provider_node.governance.discrepancies``). Time is passed in (``now``), never read here.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.orm import Session

from provider_node.config import DEPARTMENT_ID_RE
from provider_node.core import errors
from provider_node.core.vocabulary import Action, Outcome
from provider_node.core.workdays import china_date, working_deadline
from provider_node.governance import grant_fields as fields
from provider_node.store.models import AuditRecord, DiscrepancyReport

__all__ = [
    "ANSWER_WORKING_DAYS",
    "MAX_POSITIONS",
    "REPORT_WORKING_DAYS",
    "DiscrepancyCounts",
    "ReportStatus",
    "answer_report",
    "file_report",
    "get_report",
    "index_loads_since",
    "list_reports",
    "report_counts",
]

#: Article 26: a requester reports a doubted result within 3 working days of the comparison …
REPORT_WORKING_DAYS = 3
#: … and the provider answers within 5 working days of the report.
ANSWER_WORKING_DAYS = 5
#: Positions in one report: a comparison of more doubted items is reported in several.
MAX_POSITIONS = 10_000
# Six digits in a row, ASCII or full-width: no description needs them, every identifier has them.
_RECORD_VALUE = re.compile(r"[0-9０-９]{6,}")


class ReportStatus(StrEnum):
    PENDING = "pending"
    CONFIRMED = "confirmed"
    CORRECTED = "corrected"
    REJECTED = "rejected"


@dataclass(frozen=True)
class DiscrepancyCounts:
    """For ``bidui_discrepancies_pending`` / ``_overdue`` and the quarterly report (article 36)."""

    pending: int
    #: Pending past their answer deadline.
    overdue: int
    filed: int
    answered: int
    #: Answered on or before their deadline, read as a date in China.
    answered_on_time: int


# ---- filing and answering ----------------------------------------------------------------------


def file_report(
    session: Session,
    department: str,
    comparison_id: str,
    positions: Iterable[int],
    description: str,
    now: datetime,
    *,
    report_id: str | None = None,
) -> DiscrepancyReport:
    """Record ``department``'s pending report on its own comparison ``comparison_id``.

    ``UnknownRecordError`` when the id names no comparison of the department; ``StateConflictError``
    when that comparison gave no result (refused, failed, withheld); ``ReportTooLateError`` after
    the third working day following it; ``InvalidRequestError`` for a bad position or description.
    Deadlines past the calendar's end are provisional (``deadlines_provisional``).
    """
    filed_at = fields.instant(now)
    fields.name("department", department, DEPARTMENT_ID_RE)
    text = _description(description)
    record = _comparison(session, department, comparison_id)
    places = _positions(positions, record)
    compared_on = china_date(record.occurred_at)
    reporting = working_deadline(compared_on, REPORT_WORKING_DAYS)
    report_deadline = reporting.day
    # A provisional deadline may come before the true one (an unannounced holiday): it never
    # makes a report late.
    if not reporting.provisional and china_date(filed_at) > report_deadline:
        raise errors.ReportTooLateError(
            f"comparison {record.comparison_id} was made on {compared_on} (China time): a doubted "
            f"result could be reported until {report_deadline}, {REPORT_WORKING_DAYS} working "
            "days later (article 26)"
        )
    answering = working_deadline(filed_at, ANSWER_WORKING_DAYS)
    report = DiscrepancyReport(
        id=report_id or str(uuid.uuid4()),
        comparison_id=record.comparison_id,
        department=department,
        resource_id=record.resource_id,
        compared_at=record.occurred_at,
        positions=places,
        description=text,
        filed_at=filed_at,
        report_deadline=report_deadline,
        answer_deadline=answering.day,
        deadlines_provisional=reporting.provisional or answering.provisional,
        status=ReportStatus.PENDING.value,
    )
    session.add(report)
    session.flush()
    return report


def answer_report(
    session: Session,
    report_id: str,
    status: ReportStatus | str,
    answered_by: str,
    now: datetime,
    *,
    note: str | None = None,
    correction_id: str | None = None,
) -> DiscrepancyReport:
    """Answer a pending report: ``CONFIRMED``, ``CORRECTED`` (``correction_id`` names the
    ``index_load`` audit record of the refresh that corrected the result: of the report's resource,
    after the comparison) or ``REJECTED`` (``note`` is then the mandatory reason).

    ``StateConflictError`` if the report is already answered (the first answer is kept).
    """
    answered_at = fields.instant(now)
    verdict = _verdict(status)
    who = fields.text("answered_by", answered_by, limit=fields.MAX_NAME)
    blank = "a rejection must give its reason (article 26)"
    if verdict is ReportStatus.REJECTED:
        text: str | None = fields.text("reason", note or "", blank=blank)
    else:
        text = fields.text("note", note) if note is not None else None
    if (verdict is ReportStatus.CORRECTED) != (correction_id is not None):
        raise errors.InvalidRequestError(
            "a correction, and only a correction, names the index refresh that made it"
        )
    report = _pending(session, report_id)
    if correction_id is not None:
        correction_id = _index_load(session, report, correction_id).comparison_id
    report.status = verdict.value
    report.answered_at = answered_at
    report.answered_by = who
    report.answer = text
    report.correction_id = correction_id
    session.flush()
    return report


# ---- reading -----------------------------------------------------------------------------------


def get_report(session: Session, report_id: str) -> DiscrepancyReport:
    """The report with that id; ``UnknownRecordError`` if there is none."""
    report = session.get(DiscrepancyReport, _uuid(report_id, "discrepancy report"))
    if report is None:
        raise errors.UnknownRecordError(f"no discrepancy report {report_id} on this node")
    return report


def list_reports(
    session: Session,
    *,
    department: str | None = None,
    status: ReportStatus | str | None = None,
    comparison_id: str | None = None,
) -> list[DiscrepancyReport]:
    """Reports, oldest first, optionally only ``department``'s, in ``status``, on a comparison."""
    query = select(DiscrepancyReport).order_by(DiscrepancyReport.filed_at, DiscrepancyReport.id)
    if department is not None:
        query = query.where(DiscrepancyReport.department == department)
    if status is not None:
        query = query.where(DiscrepancyReport.status == ReportStatus(status).value)
    if comparison_id is not None:
        query = query.where(DiscrepancyReport.comparison_id == comparison_id)
    return list(session.scalars(query))


def index_loads_since(session: Session, report: DiscrepancyReport) -> list[AuditRecord]:
    """The index refreshes of the report's resource after its comparison, oldest first: the
    records a correction may name."""
    query = (
        select(AuditRecord)
        .where(
            AuditRecord.action == Action.INDEX_LOAD,
            AuditRecord.outcome == Outcome.ANSWERED,
            AuditRecord.resource_id == report.resource_id,
            AuditRecord.occurred_at > report.compared_at,
        )
        .order_by(AuditRecord.seq)
    )
    return list(session.scalars(query))


def report_counts(
    session: Session,
    today: date,
    *,
    since: datetime | None = None,
    before: datetime | None = None,
    as_of: datetime | None = None,
) -> DiscrepancyCounts:
    """Pending and overdue reports on ``today`` (a date in China), and how many were filed, answered
    and answered on time with ``since <= filed_at / answered_at < before`` (each bound optional;
    a quarter for the article 36 report).

    Pending means pending now; given ``as_of`` (an instant), pending then: filed before it and not
    answered before it — at the end of a past quarter, with ``today`` its date in China.
    """
    is_answered = DiscrepancyReport.status != ReportStatus.PENDING.value
    pending: ColumnElement[bool] = ~is_answered
    if as_of is not None:
        then = fields.instant(as_of)
        pending = and_(
            DiscrepancyReport.filed_at < then,
            or_(~is_answered, DiscrepancyReport.answered_at >= then),
        )
    filed: list[ColumnElement[bool]] = []
    answers = select(DiscrepancyReport.answered_at, DiscrepancyReport.answer_deadline).where(
        is_answered
    )
    if since is not None:
        filed.append(DiscrepancyReport.filed_at >= fields.instant(since))
        answers = answers.where(DiscrepancyReport.answered_at >= fields.instant(since))
    if before is not None:
        filed.append(DiscrepancyReport.filed_at < fields.instant(before))
        answers = answers.where(DiscrepancyReport.answered_at < fields.instant(before))
    counted = session.execute(
        select(
            func.count().filter(pending),
            func.count().filter(pending, DiscrepancyReport.answer_deadline < today),
            func.count().filter(*filed) if filed else func.count(),
        )
    ).one()
    answered = on_time = 0
    # The deadline is a date in China: compared here, not in SQL, so both backends agree.
    for answered_at, deadline in session.execute(answers):
        assert answered_at is not None  # ck_discrepancy_reports_answered_at
        answered += 1
        on_time += china_date(answered_at) <= deadline
    return DiscrepancyCounts(counted[0], counted[1], counted[2], answered, on_time)


# ---- helpers -----------------------------------------------------------------------------------


def _comparison(session: Session, department: str, comparison_id: str) -> AuditRecord:
    """The audit record of ``department``'s comparison that gave a result."""
    missing = errors.UnknownRecordError(
        f"no comparison {comparison_id!r} of department {department} on this node"
    )
    try:
        canonical = str(uuid.UUID(comparison_id))
    except (ValueError, TypeError, AttributeError):
        raise missing from None
    record = session.scalars(
        select(AuditRecord).where(AuditRecord.comparison_id == canonical)
    ).one_or_none()
    # Another department's comparison is answered as none at all: ids tell no one anything.
    if record is None or record.action != Action.COMPARISON or record.requester != department:
        raise missing
    if record.outcome != Outcome.ANSWERED:
        raise errors.StateConflictError(
            f"comparison {canonical} was {record.outcome} ({record.status_code}): it gave no "
            "result to doubt"
        )
    withheld = session.scalar(
        select(func.count()).where(
            AuditRecord.related_id == canonical,
            AuditRecord.action == Action.COMPARISON,
            AuditRecord.outcome == Outcome.FAILED,
        )
    )
    if withheld:
        raise errors.StateConflictError(
            f"the answer of comparison {canonical} was withheld (answered UNAVAILABLE): it gave "
            "no result to doubt"
        )
    return record


def _positions(positions: Iterable[int], record: AuditRecord) -> list[int]:
    """Sorted positions without repeats, each an item of the comparison."""
    if isinstance(positions, str | bytes):
        raise errors.InvalidRequestError("positions must be a list of whole numbers")
    places = list(positions)
    if any(isinstance(p, bool) or not isinstance(p, int) for p in places):
        raise errors.InvalidRequestError("positions must be whole numbers")
    unique = sorted(set(places))
    if not unique:
        raise errors.InvalidRequestError(
            "name the doubted records by their positions in the comparison (0 is its first item)"
        )
    if len(unique) > MAX_POSITIONS:
        raise errors.InvalidRequestError(
            f"at most {MAX_POSITIONS:,} positions in one report: file several"
        )
    outside = [p for p in (unique[0], unique[-1]) if not 0 <= p < record.item_count]
    if outside:
        raise errors.InvalidRequestError(
            f"position {outside[0]} is not in comparison {record.comparison_id}, which had "
            f"{record.item_count} items (positions 0 to {record.item_count - 1})"
        )
    return unique


def _description(description: str) -> str:
    text = fields.text("description", description, blank="describe what seems wrong")
    if _RECORD_VALUE.search(text):
        raise errors.InvalidRequestError(
            "the description must not carry record values (an identity number, a phone number, a "
            "code): name the doubted records by their positions and say what seems wrong in words"
        )
    return text


def _verdict(status: ReportStatus | str) -> ReportStatus:
    try:
        verdict = ReportStatus(status)
    except ValueError:
        verdict = ReportStatus.PENDING
    if verdict is ReportStatus.PENDING:
        raise errors.InvalidRequestError("an answer confirms, corrects or rejects the report")
    return verdict


def _pending(session: Session, report_id: str) -> DiscrepancyReport:
    """The report, locked until the transaction ends and read afresh (two operators answering at
    once: the second sees the first's answer). SQLite writers are serialised by BEGIN IMMEDIATE."""
    report = session.get(
        DiscrepancyReport,
        _uuid(report_id, "discrepancy report"),
        with_for_update=True,
        populate_existing=True,
    )
    if report is None:
        raise errors.UnknownRecordError(f"no discrepancy report {report_id} on this node")
    if report.status != ReportStatus.PENDING.value:
        assert report.answered_at is not None  # ck_discrepancy_reports_answered_at
        raise errors.StateConflictError(
            f"discrepancy report {report.id} was already {report.status} on "
            f"{china_date(report.answered_at)} by {report.answered_by}"
        )
    return report


def _index_load(session: Session, report: DiscrepancyReport, record_id: str) -> AuditRecord:
    canonical = _uuid(record_id, "index load record")
    record = session.scalars(
        select(AuditRecord).where(AuditRecord.comparison_id == canonical)
    ).one_or_none()
    if record is None or record.action != Action.INDEX_LOAD or record.outcome != Outcome.ANSWERED:
        raise errors.InvalidRequestError(
            f"audit record {record_id} is not an index refresh ({Action.INDEX_LOAD}): "
            "name the one that corrected the result"
        )
    if record.resource_id != report.resource_id or record.occurred_at <= report.compared_at:
        raise errors.InvalidRequestError(
            f"index refresh {canonical} did not follow comparison {report.comparison_id} on "
            f"{report.resource_id}: it cannot have corrected its result"
        )
    return record


def _uuid(record_id: str, what: str) -> str:
    try:
        return str(uuid.UUID(record_id))
    except (ValueError, TypeError, AttributeError):
        raise errors.UnknownRecordError(f"no {what} {record_id!r} on this node") from None
