"""Reading applications and grants, and the grant a comparison runs under (articles 25, 31, 36).

``find_grant`` is checked before every comparison against a ``conditional`` resource: it returns
the grant that covers the comparison today, or refuses saying exactly why not::

    no grant ─> key not granted ─> mode not granted ─> answer not granted
        ─> of those left: valid today? ─yes─> grant
                                       └─no─> not yet valid | revoked on (reason) | expired on

``application_counts`` feeds ``bidui_applications_pending`` / ``_overdue`` and the quarterly
report. The decisions that create and end these records are in ``provider_node.governance.grants``.

Each function takes a ``Session``; the caller owns the transaction. Time is passed in (``today``,
a calendar date in China; ``as_of`` and the decision bounds, aware instants), never read here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TypeVar

from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.orm import Session

from provider_node.core import errors
from provider_node.core.errors import GrantRefusal, GrantRefusalReason
from provider_node.core.workdays import china_date
from provider_node.governance import grant_fields as fields
from provider_node.governance.grants import ApplicationStatus, record_uuid
from provider_node.store.models import Application, Base, Grant

__all__ = [
    "ApplicationCounts",
    "GrantRefusal",
    "GrantRefusalReason",
    "application_counts",
    "find_grant",
    "get_application",
    "get_grant",
    "list_applications",
    "list_grants",
]

_Row = TypeVar("_Row", bound=Base)


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


def _get(session: Session, model: type[_Row], record_id: str, what: str) -> _Row:
    row = session.get(model, record_uuid(record_id, what))
    if row is None:
        raise errors.UnknownRecordError(f"no {what} {record_id} on this node")
    return row
