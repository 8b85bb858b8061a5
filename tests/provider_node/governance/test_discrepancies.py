"""Discrepancy reports (article 26) on SQLite and PostgreSQL: filed within 3 working days of the
comparison (across National Day), only on the department's own answered comparisons, positions and
descriptions checked; answered within 5 working days, confirmed, corrected by a named index
refresh, or rejected with a reason; each action one audit record in the same transaction."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from provider_node.audit.log import AuditLog
from provider_node.audit.records import AuditEntry
from provider_node.core import errors
from provider_node.governance import discrepancies
from provider_node.governance.discrepancy_records import (
    MAX_POSITIONS,
    DiscrepancyCounts,
    ReportStatus,
    file_report,
    index_loads_since,
    list_reports,
    report_counts,
)
from provider_node.identity.auth import Caller
from provider_node.store.models import AuditRecord, DiscrepancyReport
from provider_node.transport import status

CHINA = timezone(timedelta(hours=8))
# Monday 2025-09-29, 10:00 in China: 3 working days later, across National Day, is Fri 2025-10-10.
COMPARED = datetime(2025, 9, 29, 10, 0, tzinfo=CHINA)
REPORT_DEADLINE = date(2025, 10, 10)
# Filed on its last day: 5 working days later (Sat 10-11 is a make-up working day) is Thu 10-16.
FILED = datetime(2025, 10, 10, 23, 30, tzinfo=CHINA)
ANSWER_DEADLINE = date(2025, 10, 16)
DEPARTMENT = "luzhou-civil-affairs"
OTHER = "luzhou-health"
RESOURCE = "residents"
CALLER = Caller(DEPARTMENT, "ab" * 32, "1f")
OFFICER = "operator 王芳"
DOUBT = "these two were answered not matched, but both people hold residence permits"


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock(COMPARED)


@pytest.fixture
def audit(sessions: sessionmaker[Session], clock: Clock) -> AuditLog:
    return AuditLog(sessions, clock=clock)


def recorded(audit: AuditLog, **changes: Any) -> str:
    """A comparison's audit record (answered, 10 items, the department's) unless changed."""
    fields: dict[str, Any] = {
        "action": "comparison",
        "outcome": "answered",
        "status_code": "OK",
        "requester": DEPARTMENT,
        "resource_id": RESOURCE,
        "comparison_key": "id_number",
        "mode": "blinded",
        "item_count": 10,
        "match_count": 4,
    }
    fields.update(changes)
    return audit.append(AuditEntry(**fields))


def filed(audit: AuditLog, clock: Clock, comparison_id: str, **changes: Any) -> DiscrepancyReport:
    clock.now = changes.pop("at", FILED)
    caller = changes.pop("caller", CALLER)
    desk = discrepancies.DiscrepancyDesk(audit, clock=clock)
    fields: dict[str, Any] = {"positions": [7, 2, 2], "description": DOUBT}
    fields.update(changes)
    return desk.file(caller, comparison_id, **fields)


def records_of(audit: AuditLog, action: str) -> list[AuditRecord]:
    with audit.sessions() as session:
        return list(session.scalars(select(AuditRecord).where(AuditRecord.action == action)))


# ---- filing ----------------------------------------------------------------------------------


def test_a_report_on_the_last_day_is_pending_with_its_answer_deadline(
    audit: AuditLog, clock: Clock
) -> None:
    comparison_id = recorded(audit)
    report = filed(audit, clock, comparison_id)
    assert report.status == ReportStatus.PENDING
    assert (report.report_deadline, report.answer_deadline) == (REPORT_DEADLINE, ANSWER_DEADLINE)
    assert report.positions == [2, 7]  # sorted, without repeats
    assert (report.resource_id, report.compared_at) == (RESOURCE, COMPARED.astimezone(UTC))
    [record] = records_of(audit, "discrepancy_report")
    # The report's id is its audit record's; the record follows up the comparison.
    assert (record.comparison_id, record.related_id) == (report.id, comparison_id)
    assert (record.requester, record.cert_serial, record.item_count) == (DEPARTMENT, "1f", 2)
    assert DOUBT not in record.reason and len(record.payload_sha256) == 64
    assert audit.verify().ok


def test_the_next_day_is_too_late_even_a_make_up_working_day(audit: AuditLog, clock: Clock) -> None:
    comparison_id = recorded(audit)
    # Saturday 2025-10-11 is a working day (调休), but the fourth after the comparison.
    with pytest.raises(errors.ReportTooLateError, match="until 2025-10-10, 3 working days") as e:
        filed(audit, clock, comparison_id, at=datetime(2025, 10, 11, 0, 1, tzinfo=CHINA))
    assert status.status_code(e.value).name == "FAILED_PRECONDITION"
    assert records_of(audit, "discrepancy_report") == []


def test_china_time_decides_the_day(audit: AuditLog, clock: Clock) -> None:
    comparison_id = recorded(audit)
    # 2025-10-10T16:30Z is already Saturday in China.
    with pytest.raises(errors.ReportTooLateError):
        filed(audit, clock, comparison_id, at=datetime(2025, 10, 10, 16, 30, tzinfo=UTC))
    filed(audit, clock, comparison_id, at=datetime(2025, 10, 10, 15, 59, tzinfo=UTC))


@pytest.mark.parametrize(
    "changes",
    [
        {"requester": OTHER},  # another department's comparison
        {"action": "index_load", "mode": "", "comparison_key": "", "match_count": 0},
    ],
)
def test_only_the_departments_own_comparisons_are_found(
    audit: AuditLog, clock: Clock, changes: dict[str, Any]
) -> None:
    comparison_id = recorded(audit, **changes)
    with pytest.raises(errors.UnknownRecordError, match="no comparison") as raised:
        filed(audit, clock, comparison_id)
    assert status.status_code(raised.value).name == "NOT_FOUND"
    # Nothing tells the caller the id exists elsewhere.
    assert OTHER not in str(raised.value)


@pytest.mark.parametrize("comparison_id", ["5f0c8f0e-8f3b-4b8e-9d7e-0a8c1b2d3e4f", "not-an-id", ""])
def test_unknown_comparison_ids_are_not_found(
    audit: AuditLog, clock: Clock, comparison_id: str
) -> None:
    with pytest.raises(errors.UnknownRecordError):
        filed(audit, clock, comparison_id)


def test_a_comparison_without_a_result_cannot_be_doubted(audit: AuditLog, clock: Clock) -> None:
    refused = recorded(audit, outcome="refused", status_code="PERMISSION_DENIED", match_count=0)
    with pytest.raises(errors.StateConflictError, match="no result"):
        filed(audit, clock, refused)
    withheld = recorded(audit)
    recorded(audit, outcome="failed", status_code="UNAVAILABLE", match_count=0, related_id=withheld)
    with pytest.raises(errors.StateConflictError, match="withheld"):
        filed(audit, clock, withheld)


@pytest.mark.parametrize(
    ("positions", "words"),
    [
        ([], "positions in the comparison"),
        ([10], "position 10 is not in comparison .* 10 items \\(positions 0 to 9\\)"),
        ([-1, 3], "position -1"),
        ([True], "whole numbers"),
        (["3"], "whole numbers"),
        ("12", "whole numbers"),
        (range(MAX_POSITIONS + 1), "at most 10,000 positions"),
    ],
)
def test_positions_are_items_of_the_comparison(
    audit: AuditLog, clock: Clock, positions: Any, words: str
) -> None:
    comparison_id = recorded(audit, item_count=20_000 if words.startswith("at most") else 10)
    with pytest.raises(errors.InvalidRequestError, match=words):
        filed(audit, clock, comparison_id, positions=positions)


@pytest.mark.parametrize(
    ("description", "words"),
    [
        ("   ", "describe what seems wrong"),
        ("row 3 is 11010519491231002X and should match", "must not carry record values"),
        ("電話１３８００１３８０００ not found", "must not carry record values"),
        ("x" * 2001, "at most 2000 characters"),
    ],
)
def test_descriptions_say_what_seems_wrong_without_values(
    audit: AuditLog, clock: Clock, description: str, words: str
) -> None:
    comparison_id = recorded(audit)
    with pytest.raises(errors.InvalidRequestError, match=words):
        filed(audit, clock, comparison_id, description=description)
    # Dates as people write them and short numbers are words, not record values.
    filed(audit, clock, comparison_id, description="since the 2025-09-01 refresh, 12 of 40 wrong")


def test_the_desk_shows_a_department_its_own_reports_only(audit: AuditLog, clock: Clock) -> None:
    mine = filed(audit, clock, recorded(audit))
    theirs = filed(audit, clock, recorded(audit, requester=OTHER), caller=Caller(OTHER, "cd" * 32))
    desk = discrepancies.DiscrepancyDesk(audit, clock=clock)
    assert desk.report(CALLER, mine.id).id == mine.id
    with pytest.raises(errors.UnknownRecordError):
        desk.report(CALLER, theirs.id)
    assert [r.id for r in desk.reports(CALLER)] == [mine.id]
    assert desk.reports(CALLER, mine.comparison_id)[0].id == mine.id
    assert desk.reports(CALLER, theirs.comparison_id) == []


# ---- answering -------------------------------------------------------------------------------

ANSWERED = datetime(2025, 10, 16, 17, 0, tzinfo=CHINA)


def refreshed(audit: AuditLog, clock: Clock, at: datetime, resource: str = RESOURCE) -> str:
    clock.now = at
    return recorded(
        audit, action="index_load", resource_id=resource, mode="", comparison_key="",
        item_count=300, match_count=0,
    )  # fmt: skip


def test_a_correction_names_the_index_refresh_that_followed(audit: AuditLog, clock: Clock) -> None:
    comparison_id = recorded(audit)
    before = refreshed(audit, clock, COMPARED - timedelta(days=1))
    elsewhere = refreshed(audit, clock, COMPARED + timedelta(days=1), resource="companies")
    after = refreshed(audit, clock, COMPARED + timedelta(days=2))
    report = filed(audit, clock, comparison_id)
    with audit.sessions() as session:
        assert [r.comparison_id for r in index_loads_since(session, report)] == [after]
    clock.now = ANSWERED
    for wrong in (before, elsewhere):
        with pytest.raises(errors.InvalidRequestError, match="did not follow"):
            discrepancies.correct(audit, report.id, wrong, operator=OFFICER, now=ANSWERED)
    with pytest.raises(errors.InvalidRequestError, match="not an index refresh"):
        discrepancies.correct(audit, report.id, comparison_id, operator=OFFICER, now=ANSWERED)
    answered = discrepancies.correct(
        audit, report.id, after.upper(), operator=OFFICER, now=ANSWERED, note="source fixed"
    )
    assert (answered.status, answered.correction_id, answered.answer) == (
        "corrected",
        after,
        "source fixed",
    )
    [record] = records_of(audit, "discrepancy_answer")
    assert (record.related_id, record.requester) == (report.id, DEPARTMENT)
    assert f"by {OFFICER}: report {report.id} corrected on time by index refresh {after}" in (
        record.reason
    )


def test_a_rejection_needs_its_reason_and_an_answer_is_final(audit: AuditLog, clock: Clock) -> None:
    report = filed(audit, clock, recorded(audit))
    clock.now = late = datetime(2025, 10, 17, 9, 0, tzinfo=CHINA)
    with pytest.raises(errors.InvalidRequestError, match="must give its reason"):
        discrepancies.reject(audit, report.id, "  ", operator=OFFICER, now=late)
    rejected = discrepancies.reject(
        audit, report.id, "both records were checked against the source", operator=OFFICER, now=late
    )
    assert rejected.status == "rejected" and rejected.correction_id is None
    assert "rejected late" in records_of(audit, "discrepancy_answer")[0].reason
    with pytest.raises(errors.StateConflictError, match="already rejected on 2025-10-17"):
        discrepancies.confirm(audit, report.id, operator=OFFICER, now=late)
    assert len(records_of(audit, "discrepancy_answer")) == 1


def test_confirmation_and_unknown_reports(audit: AuditLog, clock: Clock) -> None:
    report = filed(audit, clock, recorded(audit))
    confirmed = discrepancies.confirm(audit, report.id, operator=OFFICER, now=ANSWERED)
    assert (confirmed.status, confirmed.answer, confirmed.answered_by) == (
        "confirmed",
        None,
        OFFICER,
    )
    for unknown in ("5f0c8f0e-8f3b-4b8e-9d7e-0a8c1b2d3e4f", "nope"):
        with pytest.raises(errors.UnknownRecordError):
            discrepancies.confirm(audit, unknown, operator=OFFICER, now=ANSWERED)


# ---- counts (metrics, quarterly report) --------------------------------------------------------


def counts(audit: AuditLog, today: date, **bounds: Any) -> DiscrepancyCounts:
    return audit.read(lambda session: report_counts(session, today, **bounds))


def test_counts_pending_overdue_filed_and_answered_on_time(audit: AuditLog, clock: Clock) -> None:
    first = filed(audit, clock, recorded(audit))
    second = filed(audit, clock, recorded(audit))
    filed(audit, clock, recorded(audit))
    discrepancies.confirm(audit, first.id, operator=OFFICER, now=ANSWERED)
    late = datetime(2025, 10, 20, 9, 0, tzinfo=CHINA)
    discrepancies.reject(audit, second.id, "checked", operator=OFFICER, now=late)
    assert counts(audit, ANSWER_DEADLINE) == DiscrepancyCounts(1, 0, 3, 2, 1)
    assert counts(audit, date(2025, 10, 17)).overdue == 1
    # At the end of the day before the late answer, two were pending (one overdue).
    then = datetime(2025, 10, 19, 16, 0, tzinfo=UTC)
    at_then = counts(audit, date(2025, 10, 19), as_of=then)
    assert (at_then.pending, at_then.overdue) == (2, 2)
    # Filed and answered within bounds.
    window = {"since": FILED - timedelta(hours=1), "before": late}
    assert counts(audit, date(2025, 10, 19), **window) == DiscrepancyCounts(1, 1, 3, 1, 1)
    with audit.sessions() as session:
        assert len(list_reports(session, status="pending")) == 1
        assert len(list_reports(session, department=OTHER)) == 0


def test_a_report_and_its_record_commit_together(
    sessions: sessionmaker[Session], audit: AuditLog, clock: Clock
) -> None:
    comparison_id = recorded(audit)

    def broken(session: Session) -> AuditEntry:
        file_report(session, DEPARTMENT, comparison_id, [1], DOUBT, FILED)
        raise errors.AuditUnavailableError("the log refused it")

    with pytest.raises(errors.AuditUnavailableError):
        audit.append_action(broken)
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(DiscrepancyReport)) == 0
