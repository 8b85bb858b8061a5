"""Applications and grants on SQLite and PostgreSQL: submitting with a working-day deadline,
approving only as narrow as asked, refusing with a reason, revoking, the precise refusals of
``find_grant``, and the counts behind the metrics and the quarterly report."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from provider_node.core import errors
from provider_node.core.workdays import supported_years
from provider_node.governance.grant_lookup import (
    ApplicationCounts,
    GrantRefusal,
    GrantRefusalReason,
    application_counts,
    find_grant,
    get_application,
    get_grant,
    list_applications,
    list_grants,
)
from provider_node.governance.grants import (
    ApplicationStatus,
    approve,
    refuse,
    revoke_grant,
    submit_application,
)
from provider_node.store.models import Application, Grant
from provider_node.transport import status

CHINA = timezone(timedelta(hours=8))
# Monday 2025-09-29, 10:00 in China: 5 working days later, across National Day, is 2025-10-13.
SUBMITTED = datetime(2025, 9, 29, 10, 0, tzinfo=CHINA)
DEADLINE = date(2025, 10, 13)
DECIDED = datetime(2025, 10, 9, 15, 0, tzinfo=CHINA)
DEPARTMENT = "luzhou-civil-affairs"
RESOURCE = "residents"
OFFICER = "operator 王芳"


def application(session: Session, **changes: Any) -> Application:
    fields: dict[str, Any] = {
        "department": DEPARTMENT,
        "resource_id": RESOURCE,
        "keys": ["id_number+name", "id_number", "id_number"],
        "modes": ["hashed", "blinded"],
        "duty": "  低保資格複核 / benefit eligibility review (article 31)  ",
        "items_per_day": 5000,
        "valid_until": date(2026, 9, 30),
        "now": SUBMITTED,
    }
    fields.update(changes)
    return submit_application(session, **fields)


def submitted(sessions: sessionmaker[Session], **changes: Any) -> str:
    with sessions.begin() as session:
        return application(session, **changes).id


def approved(sessions: sessionmaker[Session], **narrowing: Any) -> Grant:
    application_id = submitted(sessions)
    with sessions.begin() as session:
        return approve(session, application_id, OFFICER, DECIDED, **narrowing)


# ---- submitting ------------------------------------------------------------------------------


def test_submission_is_pending_with_its_article_25_deadline(
    sessions: sessionmaker[Session],
) -> None:
    application_id = submitted(sessions)
    with sessions() as session:
        stored = get_application(session, application_id)
        assert stored.status == ApplicationStatus.PENDING
        assert stored.decision_deadline == DEADLINE
        assert stored.submitted_at == SUBMITTED.astimezone(UTC)
        assert stored.submitted_at.tzinfo is UTC
        assert stored.comparison_keys == ["id_number", "id_number+name"]  # sorted, no repeats
        assert stored.modes == ["blinded", "hashed"]
        assert stored.duty == "低保資格複核 / benefit eligibility review (article 31)"
        assert (stored.decided_at, stored.decided_by, stored.decision_reason) == (None, None, None)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"department": "Civil Affairs"}, "department"),
        ({"resource_id": ""}, "resource_id"),
        ({"keys": []}, "comparison keys"),
        ({"keys": "id_number"}, "list"),
        ({"keys": ["id number"]}, "comparison key"),
        ({"modes": ["private"]}, "modes"),
        ({"modes": []}, "modes"),
        ({"duty": "   "}, "duty"),
        ({"duty": "x" * 2001}, "duty"),
        ({"items_per_day": 0}, "items_per_day"),
        ({"items_per_day": 2.5}, "items_per_day"),
        ({"valid_until": date(2025, 9, 28)}, "already past"),
        ({"valid_until": datetime(2026, 1, 1, tzinfo=UTC)}, "calendar date"),
        ({"now": datetime(2025, 9, 29, 10, 0)}, "naive"),
    ],
)
def test_submission_fields_are_validated(
    sessions: sessionmaker[Session], change: dict[str, Any], message: str
) -> None:
    with sessions.begin() as session, pytest.raises(errors.InvalidRequestError, match=message):
        application(session, **change)


def test_a_deadline_beyond_the_known_calendar_is_provisional_not_refused(
    sessions: sessionmaker[Session],
) -> None:
    last = supported_years()[1]
    late = datetime(last, 12, 29, 10, 0, tzinfo=CHINA)
    with sessions.begin() as session:
        made = application(session, now=late, valid_until=date(last + 1, 6, 30))
        assert made.deadline_provisional and made.decision_deadline.year == last + 1
    with sessions.begin() as session:
        on_time = application(
            session, now=datetime(last, 12, 1, 10, 0, tzinfo=CHINA), valid_until=date(last, 12, 31)
        )
        assert not on_time.deadline_provisional


def test_listing_and_unknown_ids(sessions: sessionmaker[Session]) -> None:
    first = submitted(sessions)
    second = submitted(sessions, department="luzhou-tax", now=SUBMITTED + timedelta(hours=1))
    with sessions.begin() as session:
        refuse(session, second, "no duty under article 31 shown", OFFICER, DECIDED)
    with sessions() as session:
        assert [a.id for a in list_applications(session)] == [first, second]
        assert [a.id for a in list_applications(session, status="pending")] == [first]
        assert [a.id for a in list_applications(session, ApplicationStatus.REFUSED)] == [second]
        assert [a.id for a in list_applications(session, department="luzhou-tax")] == [second]
        for bad in ("not-a-uuid", "00000000-0000-4000-8000-000000000000"):
            with pytest.raises(errors.UnknownRecordError) as caught:
                get_application(session, bad)
            with pytest.raises(errors.UnknownRecordError):
                get_grant(session, bad)
        assert status.status_code(caught.value).name == "NOT_FOUND"


# ---- deciding --------------------------------------------------------------------------------


def test_approval_as_applied(sessions: sessionmaker[Session]) -> None:
    grant = approved(sessions)
    with sessions() as session:
        decided = get_application(session, grant.application_id)
        assert decided.status == ApplicationStatus.APPROVED
        assert decided.decided_at == DECIDED.astimezone(UTC)
        assert decided.decided_by == OFFICER
        kept = get_grant(session, grant.id)
        assert kept.comparison_keys == ["id_number", "id_number+name"]
        assert kept.modes == ["blinded", "hashed"]
        assert (kept.items_per_day, kept.valid_from, kept.valid_until) == (
            5000,
            date(2025, 10, 9),
            date(2026, 9, 30),
        )
        assert (kept.department, kept.resource_id, kept.revoked_at) == (DEPARTMENT, RESOURCE, None)


def test_approval_may_narrow(sessions: sessionmaker[Session]) -> None:
    grant = approved(
        sessions,
        keys=["id_number"],
        modes=["blinded"],
        items_per_day=1000,
        valid_until=date(2025, 12, 31),
        reason="only the key the duty needs",
    )
    assert grant.comparison_keys == ["id_number"]
    assert grant.modes == ["blinded"]
    assert (grant.items_per_day, grant.valid_until) == (1000, date(2025, 12, 31))
    with sessions() as session:
        assert get_application(session, grant.application_id).decision_reason == (
            "only the key the duty needs"
        )


@pytest.mark.parametrize(
    ("wider", "message"),
    [
        ({"keys": ["id_number", "name"]}, "keys name were not applied for"),
        ({"modes": ["hashed", "private"]}, "modes must be"),
        ({"items_per_day": 5001}, "more than the 5000 applied for"),
        ({"valid_until": date(2026, 10, 1)}, "later than the 2026-09-30 applied for"),
        ({"keys": []}, "comparison keys"),
    ],
)
def test_approval_never_widens(
    sessions: sessionmaker[Session], wider: dict[str, Any], message: str
) -> None:
    application_id = submitted(sessions)
    with sessions.begin() as session, pytest.raises(errors.InvalidRequestError, match=message):
        approve(session, application_id, OFFICER, DECIDED, **wider)
    with sessions() as session:
        assert get_application(session, application_id).status == ApplicationStatus.PENDING
        assert list_grants(session) == []


def test_approval_too_wide_is_its_own_invalid_argument() -> None:
    error = errors.ApprovalTooWideError("wider")
    assert isinstance(error, errors.InvalidRequestError)
    assert status.status_code(error).name == "INVALID_ARGUMENT"
    assert error.reason == "approval_too_wide"


def test_a_decision_is_taken_once(sessions: sessionmaker[Session]) -> None:
    grant = approved(sessions)
    for decide in (
        lambda s: approve(s, grant.application_id, OFFICER, DECIDED),
        lambda s: refuse(s, grant.application_id, "changed my mind", OFFICER, DECIDED),
    ):
        with sessions.begin() as session, pytest.raises(errors.StateConflictError) as caught:
            decide(session)
        assert "already approved on 2025-10-09" in str(caught.value)
    assert status.status_code(caught.value).name == "FAILED_PRECONDITION"


def test_approving_after_the_validity_ended_is_refused(sessions: sessionmaker[Session]) -> None:
    application_id = submitted(sessions, valid_until=date(2025, 10, 8))
    with sessions.begin() as session, pytest.raises(errors.StateConflictError, match="refuse"):
        approve(session, application_id, OFFICER, DECIDED)


def test_refusal_needs_its_reason(sessions: sessionmaker[Session]) -> None:
    application_id = submitted(sessions)
    with sessions.begin() as session, pytest.raises(errors.InvalidRequestError, match="article 25"):
        refuse(session, application_id, " \n ", OFFICER, DECIDED)
    with sessions.begin() as session, pytest.raises(errors.InvalidRequestError, match="decided_by"):
        refuse(session, application_id, "no legal basis", "  ", DECIDED)
    with sessions.begin() as session:
        refused = refuse(
            session, application_id, "  no legal basis for id_number+name ", OFFICER, DECIDED
        )
    assert refused.status == ApplicationStatus.REFUSED
    assert refused.decision_reason == "no legal basis for id_number+name"
    with sessions() as session:
        assert list_grants(session) == []


def test_two_operators_deciding_at_once_make_one_decision(sessions: sessionmaker[Session]) -> None:
    application_id = submitted(sessions)
    outcomes: list[str] = []
    barrier = threading.Barrier(4)

    def decide(number: int) -> None:
        barrier.wait()
        try:
            with sessions.begin() as session:
                if number % 2:
                    refuse(session, application_id, "duplicate", f"operator {number}", DECIDED)
                else:
                    approve(session, application_id, f"operator {number}", DECIDED)
            outcomes.append("decided")
        except errors.StateConflictError:
            outcomes.append("conflict")

    threads = [threading.Thread(target=decide, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["conflict", "conflict", "conflict", "decided"]
    with sessions() as session:
        decided = get_application(session, application_id)
        grants = session.scalar(select(func.count()).select_from(Grant))
        assert grants == (1 if decided.status == ApplicationStatus.APPROVED else 0)


# ---- checking a comparison -------------------------------------------------------------------


def refusal(sessions: sessionmaker[Session], **changes: Any) -> GrantRefusal:
    query: dict[str, Any] = {
        "department": DEPARTMENT,
        "resource_id": RESOURCE,
        "key": "id_number",
        "mode": "blinded",
        "today": date(2025, 10, 10),
    }
    query.update(changes)
    with sessions() as session, pytest.raises(GrantRefusal) as caught:
        find_grant(session, **query)
    assert status.status_code(caught.value).name == "PERMISSION_DENIED"
    return caught.value


def test_find_grant_finds_the_covering_grant(sessions: sessionmaker[Session]) -> None:
    grant = approved(sessions)
    with sessions() as session:
        for today in (date(2025, 10, 9), date(2026, 9, 30)):  # first and last valid days
            found = find_grant(session, DEPARTMENT, RESOURCE, "id_number+name", "hashed", today)
            assert found.id == grant.id


def test_find_grant_says_exactly_why_not(sessions: sessionmaker[Session]) -> None:
    none = refusal(sessions)
    assert none.why is GrantRefusalReason.NO_GRANT and none.reason == "not_granted"
    assert "apply" in str(none) and none.grant_id == ""

    grant = approved(
        sessions, keys=["id_number+name"], modes=["hashed"], valid_until=date(2025, 12, 31)
    )
    key = refusal(sessions)
    assert key.why is GrantRefusalReason.KEY_NOT_GRANTED and key.grant_id == grant.id
    assert "keys id_number+name, not id_number" in str(key)
    mode = refusal(sessions, key="id_number+name")
    assert mode.why is GrantRefusalReason.MODE_NOT_GRANTED
    assert "in mode hashed only, not blinded" in str(mode)

    early = refusal(sessions, key="id_number+name", mode="hashed", today=date(2025, 10, 8))
    assert early.why is GrantRefusalReason.NOT_YET_VALID and "valid from 2025-10-09" in str(early)
    late = refusal(sessions, key="id_number+name", mode="hashed", today=date(2026, 1, 1))
    assert late.why is GrantRefusalReason.EXPIRED and late.reason == "grant_expired"
    assert "expired on 2026-01-01 (it was valid until 2025-12-31)" in str(late)

    with sessions.begin() as session:
        revoke_grant(session, grant.id, "duty ended", datetime(2025, 11, 3, 17, 0, tzinfo=UTC))
    revoked = refusal(sessions, key="id_number+name", mode="hashed", today=date(2025, 11, 5))
    assert revoked.why is GrantRefusalReason.REVOKED and revoked.reason == "grant_revoked"
    # 17:00 UTC on Nov 3 is Nov 4 in China.
    assert "revoked on 2025-11-04: duty ended" in str(revoked)
    # Revoked takes effect at once, even on a day the grant was otherwise valid.
    refusal(sessions, key="id_number+name", mode="hashed", today=date(2025, 11, 4))


def test_find_grant_prefers_the_grant_that_covers_and_reports_the_latest(
    sessions: sessionmaker[Session],
) -> None:
    short = approved(sessions, valid_until=date(2025, 10, 31))
    long = approved(sessions, valid_until=date(2026, 3, 31))
    with sessions() as session:
        assert (
            find_grant(session, DEPARTMENT, RESOURCE, "id_number", "blinded", date(2025, 10, 20)).id
            == long.id
        )
    with sessions.begin() as session:
        revoke_grant(session, long.id, "moved to a new grant", datetime(2025, 12, 1, tzinfo=UTC))
    # Both lapsed: the refusal speaks of the one that covered the comparison last.
    latest = refusal(sessions, today=date(2026, 1, 5))
    assert latest.grant_id == long.id and latest.why is GrantRefusalReason.REVOKED
    with sessions() as session:
        assert (
            find_grant(session, DEPARTMENT, RESOURCE, "id_number", "blinded", date(2025, 10, 20)).id
            == short.id
        )


def test_revocation_needs_a_reason_and_happens_once(sessions: sessionmaker[Session]) -> None:
    grant = approved(sessions)
    with sessions.begin() as session, pytest.raises(errors.InvalidRequestError, match="reason"):
        revoke_grant(session, grant.id, "", DECIDED)
    with sessions.begin() as session:
        revoked = revoke_grant(session, grant.id, "  misuse reported  ", DECIDED)
    assert revoked.revocation_reason == "misuse reported"
    with sessions.begin() as session, pytest.raises(errors.StateConflictError, match="already"):
        revoke_grant(session, grant.id, "again", DECIDED + timedelta(days=1))
    with sessions.begin() as session, pytest.raises(errors.UnknownRecordError):
        revoke_grant(session, "00000000-0000-4000-8000-000000000000", "none", DECIDED)


# ---- counts for metrics and the quarterly report ---------------------------------------------


def test_application_counts(sessions: sessionmaker[Session]) -> None:
    with sessions() as session:
        assert application_counts(session, DEADLINE) == ApplicationCounts(0, 0, 0, 0)
        assert application_counts(session, DEADLINE).share_decided_on_time is None
    on_time, late, pending = (submitted(sessions) for _ in range(3))
    with sessions.begin() as session:
        # 23:30 in China on the deadline day is still on time, although it is the 13th in UTC...
        approve(session, on_time, OFFICER, datetime(2025, 10, 13, 23, 30, tzinfo=CHINA))
        # ...and 00:30 in China on the next day is late, although UTC still says the 13th.
        refuse(session, late, "late refusal", OFFICER, datetime(2025, 10, 14, 0, 30, tzinfo=CHINA))
    with sessions() as session:
        assert application_counts(session, DEADLINE) == ApplicationCounts(1, 0, 2, 1)
        overdue = application_counts(session, DEADLINE + timedelta(days=1))
        assert overdue == ApplicationCounts(1, 1, 2, 1)
        assert overdue.share_decided_on_time == 0.5
        quarter = application_counts(
            session,
            DEADLINE,
            decided_from=datetime(2025, 10, 1, tzinfo=CHINA),
            decided_before=datetime(2025, 10, 14, tzinfo=CHINA),
        )
        assert quarter == ApplicationCounts(1, 0, 1, 1)
        assert pending in {a.id for a in list_applications(session, "pending")}


def test_application_counts_as_of_an_instant(sessions: sessionmaker[Session]) -> None:
    on_time, late, _ = (submitted(sessions) for _ in range(3))
    submitted(sessions, now=datetime(2025, 10, 14, 10, 0, tzinfo=CHINA))  # after the instant
    with sessions.begin() as session:
        approve(session, on_time, OFFICER, DECIDED)
        refuse(session, late, "late refusal", OFFICER, datetime(2025, 10, 15, 9, 0, tzinfo=CHINA))
    end = datetime(2025, 10, 14, 9, 0, tzinfo=CHINA)
    with sessions() as session:
        then = application_counts(
            session, date(2025, 10, 14), decided_from=SUBMITTED, decided_before=end, as_of=end
        )
        now = application_counts(session, date(2025, 10, 14))
    # At 09:00 on 10-14 the refused one and the one still pending were both past their deadline.
    assert then == ApplicationCounts(2, 2, 1, 1)
    assert now == ApplicationCounts(2, 1, 2, 1)
