"""Applications and grants: conditional sharing (articles 24, 25, 31).

A department that wants to compare against a ``conditional`` resource applies, naming the
comparison keys, modes, its duty (the purpose it will use results for, article 31), the items per
day it needs and until when. The operator decides within 5 working days (``workdays``) and may
only narrow what was asked; a refusal gives its reason. An approval creates a grant, which
``grant_lookup.find_grant`` checks before every comparison::

    submit_application ─> pending ─approve─> approved ─> grant ─revoke_grant─> revoked
                            │                             │
                            └─refuse (reason)─> refused   └─ valid_from … valid_until (China dates)

Each function takes a ``Session``; the caller owns the transaction (``with sessions.begin():``)
and audits the governance action. Nothing here checks the catalog: the caller makes sure the
resource is ``conditional`` and declares the keys and modes applied for. Time is passed in
(``now``, an aware instant), never read here. Reading these records, and finding the grant a
comparison runs under, is ``provider_node.governance.grant_lookup``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from datetime import date, datetime
from enum import StrEnum
from typing import TypeVar

from sqlalchemy.orm import Session

from provider_node.config import DEPARTMENT_ID_RE, RESOURCE_ID_RE
from provider_node.core import errors
from provider_node.core.workdays import china_date, working_deadline
from provider_node.governance import grant_fields as fields
from provider_node.store.models import Application, Base, Grant

__all__ = [
    "DECISION_WORKING_DAYS",
    "ApplicationStatus",
    "approve",
    "record_uuid",
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
    any bad field (named in the message). A deadline that falls in a year the calendar does not
    know yet is provisional (``deadline_provisional``), recomputed by ``settle_provisional``."""
    submitted = fields.instant(now)
    fields.name("department", department, DEPARTMENT_ID_RE)
    fields.name("resource_id", resource_id, RESOURCE_ID_RE)
    key_list, mode_list = fields.comparison_keys(keys), fields.comparison_modes(modes)
    answer_list = fields.answers(answers)
    items = fields.items_per_day(items_per_day)
    until = fields.calendar_date("valid_until", valid_until)
    if until < china_date(submitted):
        raise errors.InvalidRequestError(f"valid_until {until} is already past")
    # Past the calendar's end the deadline is provisional, never a refusal (working_deadline).
    deadline = working_deadline(submitted, DECISION_WORKING_DAYS)
    application = Application(
        id=str(uuid.uuid4()),
        department=department,
        resource_id=resource_id,
        comparison_keys=key_list,
        modes=mode_list,
        answers=answer_list,
        duty=fields.free_text("duty", duty),
        items_per_day=items,
        valid_until=until,
        submitted_at=submitted,
        decision_deadline=deadline.day,
        deadline_provisional=deadline.provisional,
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


# ---- helpers -----------------------------------------------------------------------------------


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


def _locked(session: Session, model: type[_Row], record_id: str, what: str) -> _Row:
    """The row, locked until the transaction ends and read afresh (two operators deciding at once:
    the second sees the first's decision). SQLite writers are serialised by BEGIN IMMEDIATE."""
    row = session.get(
        model,
        record_uuid(record_id, what),
        with_for_update=True,
        populate_existing=True,
    )
    if row is None:
        raise errors.UnknownRecordError(f"no {what} {record_id} on this node")
    return row


def record_uuid(record_id: str, what: str) -> str:
    """``record_id`` as a canonical UUID; ``UnknownRecordError`` if it is not one."""
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
