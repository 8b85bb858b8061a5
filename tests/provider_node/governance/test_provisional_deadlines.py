"""Past the working-day calendar's end an application or a report is accepted with a provisional
deadline (weekdays less the fixed-date holidays), never refused; once the calendar knows the
year, the node recounts it exactly, in one audited record."""

from __future__ import annotations

import io
import json
from datetime import UTC, date, datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from provider_node.audit.log import AuditLog
from provider_node.audit.records import AuditEntry
from provider_node.core.workdays import (
    FIXED_DATE_HOLIDAYS,
    AnnouncedYear,
    announce,
    working_deadline,
)
from provider_node.governance import grants, provisional_deadlines
from provider_node.store.models import Application
from tests.provider_node.core.test_announced_years import LAST, NEXT

CHINA_10AM = timedelta(hours=2)  # 10:00 in China is 02:00 UTC


def test_a_deadline_past_the_calendar_is_provisional_and_skips_fixed_holidays() -> None:
    inside = working_deadline(date(LAST, 12, 1), 5)
    assert not inside.provisional
    late = working_deadline(date(LAST, 12, 31), 5)
    assert late.provisional and late.day.year == NEXT
    counted = [
        d
        for d in (
            date(LAST, 12, 31) + timedelta(n)
            for n in range(1, (late.day - date(LAST, 12, 31)).days + 1)
        )
        if d.weekday() < 5 and (d.month, d.day) not in FIXED_DATE_HOLIDAYS
    ]
    assert len(counted) == 5 and counted[-1] == late.day
    assert date(NEXT, 1, 1) not in counted  # New Year's Day is a fixed-date holiday


def _apply(audit: AuditLog, now: datetime) -> str:
    made: list[str] = []

    def act(session: Session) -> AuditEntry:
        application = grants.submit_application(
            session, "luzhou-civil-affairs", "residents", ["id_number"], ["hashed"],
            "低保复核", 100, date(NEXT, 12, 31), now,
        )  # fmt: skip
        made.append(application.id)
        return AuditEntry.answered("application", requester="luzhou-civil-affairs")

    audit.append_action(act)
    return made[0]


def test_an_application_past_the_calendar_is_accepted_then_settled(
    sessions: sessionmaker[Session],
) -> None:
    audit = AuditLog(sessions)
    submitted = datetime(LAST, 12, 30, tzinfo=UTC) + CHINA_10AM
    application_id = _apply(audit, submitted)  # never refused for want of a year
    with sessions() as session:
        kept = session.get(Application, application_id)
        assert kept is not None and kept.deadline_provisional
        provisional_day = kept.decision_deadline
    assert provisional_deadlines.settle(audit, operator="luzhou-psb") == (0, 0)  # not known yet
    # The State Council's notice: 2 January a holiday too, and a make-up Sunday after it.
    announce(
        [
            AnnouncedYear(
                NEXT, "国办发明电〔test〕1号", frozenset({date(NEXT, 1, 1), date(NEXT, 1, 2)})
            )
        ]
    )
    try:
        assert provisional_deadlines.settle(audit, operator="luzhou-psb") == (1, 0)
        assert provisional_deadlines.settle(audit, operator="luzhou-psb") == (0, 0)  # once
    finally:
        announce(())
    with sessions() as session:
        settled = session.get(Application, application_id)
        assert settled is not None and not settled.deadline_provisional
        exact = settled.decision_deadline
    assert exact >= provisional_day
    out = io.StringIO()
    audit.export(out, "jsonl")
    record = json.loads(out.getvalue().splitlines()[-1])
    assert record["action"] == "deadline_recomputation" and record["item_count"] == 1
    assert f"application {application_id}: {provisional_day} -> {exact}" in record["reason"]
    assert audit.verify().ok
