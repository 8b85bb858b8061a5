"""Applications and grants: conditional sharing (articles 24, 25, 31).

A department that wants to compare against a ``conditional`` resource applies, naming the
comparison keys, modes, its duty (the purpose it will use results for, article 31), the items per
day it needs and until when. The operator decides within 5 working days (``workdays``) and may
only narrow what was asked; a refusal gives its reason. An approval creates a grant, which
``find_grant`` checks before every comparison::

    submit_application ─> pending ─approve─> approved ─> grant ─revoke_grant─> revoked
                            │                             │
                            └─refuse (reason)─> refused   └─ valid_from … valid_until (China dates)

Each function takes a ``Session``; the caller owns the transaction (``with sessions.begin():``)
and audits the governance action. Nothing here checks the catalog: the caller makes sure the
resource is ``conditional`` and declares the keys and modes applied for. Time is passed in
(``now``, an aware instant; ``today``, a calendar date in China), never read here.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import TypeVar

from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.orm import Session

from provider_node import errors
from provider_node import grant_fields as fields
from provider_node.config import DEPARTMENT_ID_RE, RESOURCE_ID_RE
from provider_node.errors import GrantRefusal, GrantRefusalReason
from provider_node.models import Application, Base, Grant
from provider_node.workdays import add_working_days, china_date

__all__ = [
    "DECISION_WORKING_DAYS",
    "ApplicationCounts",
    "ApplicationStatus",
    "GrantRefusal",
    "GrantRefusalReason",
    "application_counts",
    "approve",
    "find_grant",
    "get_application",
    "get_grant",
    "list_applications",
    "list_grants",
    "refuse",
    "revoke_grant",
    "submit_application",
]

#: Article 25: the provider accepts or refuses within 5 working days of the application.
DECISION_WORKING_DAYS = 5

_Row = TypeVar("_Row", bound=Base)


class ApplicationStatus(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REFUSED = "refused"


@dataclass(frozen=True)
class ApplicationCounts:
    """For ``bidui_applications_pending`` / ``_overdue`` and the quarterly report (article 36)."""

    pending: int
    #: Pending past their decision deadline.
    overdue: int
    decided: int
    #: Decided (approved or refused) on or before their deadline, read as a date in China.
    decided_on_time: int

    @property
    def share_decided_on_time(self) -> float | None:
        """``decided_on_time / decided``; None when nothing was decided."""
        return self.decided_on_time / self.decided if self.decided else None


# ---- applying and deciding -------------------------------------------------------------------


def submit_application(
    session: Session,
    department: str,
    resource_id: str,
    keys: Iterable[str],
    modes: Iterable[str],
    duty: str,
    items_per_day: int,
    valid_until: date,
    now: datetime,
    answers: Iterable[str] | None = None,
) -> Application:
    """Record a pending application; its deadline is ``DECISION_WORKING_DAYS`` working days after
    ``now`` in China. ``answers`` left out or empty: match bits only. ``InvalidRequestError`` for
    any bad field (named in the message); ``CalendarRangeError`` if the deadline falls in a year
    the calendar does not know."""
    submitted = fields.instant(now)
    fields.name("department", department, DEPARTMENT_ID_RE)
    fields.name("resource_id", resource_id, RESOURCE_ID_RE)
    key_list, mode_list = fields.comparison_keys(keys), fields.comparison_modes(modes)
    answer_list = fields.answers(answers)
    items = fields.items_per_day(items_per_day)
    until = fields.calendar_date("valid_until", valid_until)
    if until < china_date(submitted):
        raise errors.InvalidRequestError(f"valid_until {until} is already past")
    application = Application(
        id=str(uuid.uuid4()),
        department=department,
        resource_id=resource_id,
        comparison_keys=key_list,
        modes=mode_list,
        answers=answer_list,
        duty=fields.text("duty", duty),
        items_per_day=items,
        valid_until=until,
        submitted_at=submitted,
        decision_deadline=add_working_days(submitted, DECISION_WORKING_DAYS),
        status=ApplicationStatus.PENDING.value,
    )
    session.add(application)
    session.flush()
    return application


def approve(
    session: Session,
    application_id: str,
    decided_by: str,
    now: datetime,
    *,
    keys: Iterable[str] | None = None,
    modes: Iterable[str] | None = None,
    items_per_day: int | None = None,
    valid_until: date | None = None,
    reason: str | None = None,
    answers: Iterable[str] | None = None,
) -> Grant:
    """Approve a pending application, as asked or narrowed, and return the grant it creates.

    Each of ``keys``, ``modes``, ``answers``, ``items_per_day`` and ``valid_until`` left None
    grants what was applied for; given, it may only narrow it (a non-empty subset, no more items,
    no later date), else ``ApprovalTooWideError``. The grant is valid from today in China.
    ``StateConflictError`` if the application is already decided or its validity has ended.
    """
    decided_at = fields.instant(now)
    decider = fields.text("decided_by", decided_by, limit=fields.MAX_NAME)
    note = fields.text("reason", reason) if reason is not None else None
    application = _pending(session, application_id)
    today = china_date(decided_at)
    grant_keys = _narrowed("keys", application.comparison_keys, keys, fields.comparison_keys)
    grant_modes = _narrowed("modes", application.modes, modes, fields.comparison_modes)
    grant_answers = _narrowed("answers", application.answers, answers, fields.answers)
    items = application.items_per_day
    if items_per_day is not None and fields.items_per_day(items_per_day) > items:
        raise errors.ApprovalTooWideError(
            f"items_per_day {items_per_day} is more than the {items} applied for"
        )
    until = application.valid_until
    if valid_until is not None:
        until = fields.calendar_date("valid_until", valid_until)
    if until > application.valid_until:
        raise errors.ApprovalTooWideError(
            f"valid_until {until} is later than the {application.valid_until} applied for"
        )
    if until < today:
        raise errors.StateConflictError(
            f"a grant valid until {until} would already have ended: refuse the application instead"
        )
    grant = Grant(
        id=str(uuid.uuid4()),
        application_id=application.id,
        department=application.department,
        resource_id=application.resource_id,
        comparison_keys=grant_keys,
        modes=grant_modes,
        answers=grant_answers,
        items_per_day=items if items_per_day is None else items_per_day,
        valid_from=today,
        valid_until=until,
    )
    _decide(application, ApplicationStatus.APPROVED, decided_at, decider, note)
    session.add(grant)
    session.flush()
    return grant


def refuse(
    session: Session, application_id: str, reason: str, decided_by: str, now: datetime
) -> Application:
    """Refuse a pending application; article 25 requires the ``reason``, which must not be blank."""
    decided_at = fields.instant(now)
    note = fields.text("reason", reason, blank="a refusal must give its reason (article 25)")
    decider = fields.text("decided_by", decided_by, limit=fields.MAX_NAME)
    application = _pending(session, application_id)
    _decide(application, ApplicationStatus.REFUSED, decided_at, decider, note)
    session.flush()
    return application


def revoke_grant(session: Session, grant_id: str, reason: str, now: datetime) -> Grant:
    """End a grant at ``now`` with a non-blank ``reason``; comparisons under it are refused from
    then on. ``StateConflictError`` if it is already revoked (the first revocation is kept)."""
    revoked_at = fields.instant(now)
    note = fields.text("reason", reason, blank="a revocation must give its reason")
    grant = _locked(session, Grant, grant_id, "grant")
    if grant.revoked_at is not None:
        raise errors.StateConflictError(
            f"grant {grant.id} was already revoked at {grant.revoked_at.isoformat()}"
        )
    grant.revoked_at = revoked_at
    grant.revocation_reason = note
    session.flush()
    return grant


# ---- reading -----------------------------------------------------------------------------------


def get_application(session: Session, application_id: str) -> Application:
    """The application with that id; ``UnknownRecordError`` if there is none."""
    return _get(session, Application, application_id, "application")


def get_grant(session: Session, grant_id: str) -> Grant:
    """The grant with that id; ``UnknownRecordError`` if there is none."""
    return _get(session, Grant, grant_id, "grant")


def list_applications(
    session: Session,
    status: ApplicationStatus | str | None = None,
    department: str | None = None,
) -> list[Application]:
    """Applications, oldest first, optionally only those with ``status`` or from ``department``."""
    query = select(Application).order_by(Application.submitted_at, Application.id)
    if status is not None:
        query = query.where(Application.status == ApplicationStatus(status).value)
    if department is not None:
        query = query.where(Application.department == department)
    return list(session.scalars(query))


def list_grants(
    session: Session, department: str | None = None, resource_id: str | None = None
) -> list[Grant]:
    """Grants, longest-lasting first, optionally only ``department``'s or on ``resource_id``."""
    query = select(Grant).order_by(Grant.valid_until.desc(), Grant.valid_from.desc(), Grant.id)
    if department is not None:
        query = query.where(Grant.department == department)
    if resource_id is not None:
        query = query.where(Grant.resource_id == resource_id)
    return list(session.scalars(query))


def find_grant(
    session: Session,
    department: str,
    resource_id: str,
    key: str,
    mode: str,
    today: date,
    answer: str | None = None,
) -> Grant:
    """The grant under which ``department`` may compare ``resource_id`` by ``key`` in ``mode``
    on ``today`` (a date in China) for ``answer`` (None: any); of several, the one valid longest.

    Raises ``GrantRefusal`` (PERMISSION_DENIED) saying exactly why not: no grant at all, the key,
    the mode or the answer not granted, or — for the most recent grant that would have covered
    it — not yet valid, expired on a date, or revoked on a date with its reason.
    """
    grants = list_grants(session, department, resource_id)
    what = f"department {department} on resource {resource_id}"
    if not grants:
        raise GrantRefusal(
            f"{what} has no grant: the resource is conditional, apply for one (article 25)",
            why=GrantRefusalReason.NO_GRANT,
        )
    with_key = [grant for grant in grants if key in grant.comparison_keys]
    if not with_key:
        granted = sorted({name for grant in grants for name in grant.comparison_keys})
        raise GrantRefusal(
            f"{what} is granted comparison keys {', '.join(granted)}, not {key}",
            why=GrantRefusalReason.KEY_NOT_GRANTED,
            grant_id=grants[0].id,
        )
    with_mode = [grant for grant in with_key if mode in grant.modes]
    if not with_mode:
        granted = sorted({name for grant in with_key for name in grant.modes})
        raise GrantRefusal(
            f"{what} is granted key {key} in mode {', '.join(granted)} only, not {mode}",
            why=GrantRefusalReason.MODE_NOT_GRANTED,
            grant_id=with_key[0].id,
        )
    with_answer = [grant for grant in with_mode if answer is None or answer in grant.answers]
    if not with_answer:
        granted = sorted({name for grant in with_mode for name in grant.answers})
        raise GrantRefusal(
            f"{what} is granted key {key} in {mode} mode for {', '.join(granted)} answers only, "
            f"not {answer}: apply for it",
            why=GrantRefusalReason.ANSWER_NOT_GRANTED,
            grant_id=with_mode[0].id,
        )
    for grant in with_answer:
        if grant.revoked_at is None and grant.valid_from <= today <= grant.valid_until:
            return grant
    raise _lapsed(with_answer, today, f"{what} by {key} in {mode} mode")


def application_counts(
    session: Session,
    today: date,
    *,
    decided_from: datetime | None = None,
    decided_before: datetime | None = None,
    as_of: datetime | None = None,
) -> ApplicationCounts:
    """Pending and overdue applications on ``today`` (a date in China), and how many were decided,
    and decided on time, with ``decided_from <= decided_at < decided_before`` (each bound optional;
    a quarter for the article 36 report).

    Pending means pending now; given ``as_of`` (an instant), pending then: submitted before it and
    not decided before it — at the end of a past quarter, with ``today`` its date in China.
    """
    is_decided = Application.status != ApplicationStatus.PENDING.value
    pending: ColumnElement[bool] = ~is_decided
    if as_of is not None:
        then = fields.instant(as_of)
        pending = and_(
            Application.submitted_at < then,
            or_(~is_decided, Application.decided_at >= then),
        )
    counted = session.execute(
        select(
            func.count().filter(pending),
            func.count().filter(pending, Application.decision_deadline < today),
        )
    ).one()
    decisions = select(Application.decided_at, Application.decision_deadline).where(is_decided)
    if decided_from is not None:
        decisions = decisions.where(Application.decided_at >= fields.instant(decided_from))
    if decided_before is not None:
        decisions = decisions.where(Application.decided_at < fields.instant(decided_before))
    decided = on_time = 0
    # The deadline is a date in China: compared here, not in SQL, so both backends agree.
    for decided_at, deadline in session.execute(decisions):
        assert decided_at is not None  # ck_applications_decided_at
        decided += 1
        on_time += china_date(decided_at) <= deadline
    return ApplicationCounts(counted[0], counted[1], decided, on_time)


# ---- helpers -----------------------------------------------------------------------------------


def _lapsed(grants: list[Grant], today: date, what: str) -> GrantRefusal:
    """The refusal for the grant that most recently covered (or will soon cover) the comparison."""
    upcoming = [g for g in grants if g.revoked_at is None and g.valid_from > today]
    if upcoming:
        grant = min(upcoming, key=lambda g: g.valid_from)
        return GrantRefusal(
            f"grant {grant.id} for {what} is valid from {grant.valid_from} only",
            why=GrantRefusalReason.NOT_YET_VALID,
            grant_id=grant.id,
        )

    def ended_on(grant: Grant) -> date:
        expired_on = grant.valid_until + timedelta(days=1)
        if grant.revoked_at is None:
            return expired_on
        return min(china_date(grant.revoked_at), expired_on)

    grant = max(grants, key=ended_on)
    revoked_on = None if grant.revoked_at is None else china_date(grant.revoked_at)
    if revoked_on is not None and revoked_on <= grant.valid_until:
        return GrantRefusal(
            f"grant {grant.id} for {what} was revoked on {revoked_on}: {grant.revocation_reason}",
            why=GrantRefusalReason.REVOKED,
            grant_id=grant.id,
        )
    return GrantRefusal(
        f"grant {grant.id} for {what} expired on {ended_on(grant)} (it was valid until "
        f"{grant.valid_until}): apply again",
        why=GrantRefusalReason.EXPIRED,
        grant_id=grant.id,
    )


def _pending(session: Session, application_id: str) -> Application:
    application = _locked(session, Application, application_id, "application")
    if application.status != ApplicationStatus.PENDING.value:
        assert application.decided_at is not None  # ck_applications_decided_at
        raise errors.StateConflictError(
            f"application {application.id} was already {application.status} on "
            f"{china_date(application.decided_at)} by {application.decided_by}"
        )
    return application


def _decide(
    application: Application,
    status: ApplicationStatus,
    decided_at: datetime,
    decided_by: str,
    reason: str | None,
) -> None:
    application.status = status.value
    application.decided_at = decided_at
    application.decided_by = decided_by
    application.decision_reason = reason


def _get(session: Session, model: type[_Row], record_id: str, what: str) -> _Row:
    row = session.get(model, _record_id(record_id, what))
    if row is None:
        raise errors.UnknownRecordError(f"no {what} {record_id} on this node")
    return row


def _locked(session: Session, model: type[_Row], record_id: str, what: str) -> _Row:
    """The row, locked until the transaction ends and read afresh (two operators deciding at once:
    the second sees the first's decision). SQLite writers are serialised by BEGIN IMMEDIATE."""
    row = session.get(
        model,
        _record_id(record_id, what),
        with_for_update=True,
        populate_existing=True,
    )
    if row is None:
        raise errors.UnknownRecordError(f"no {what} {record_id} on this node")
    return row


def _record_id(record_id: str, what: str) -> str:
    try:
        return str(uuid.UUID(record_id))
    except (ValueError, TypeError, AttributeError):
        raise errors.UnknownRecordError(f"no {what} {record_id!r} on this node") from None


def _narrowed(
    name: str,
    applied: list[str],
    asked: Iterable[str] | None,
    normalise: Callable[[Iterable[str]], list[str]],
) -> list[str]:
    if asked is None:
        return list(applied)
    given = normalise(asked)
    wider = sorted(set(given) - set(applied))
    if wider:
        raise errors.ApprovalTooWideError(
            f"{name} {', '.join(wider)} were not applied for (applied: {', '.join(applied)})"
        )
    return given
