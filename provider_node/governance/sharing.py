"""Conditional sharing as governance actions (articles 24, 25, 31): apply, decide, revoke.

Departments apply over gRPC (``SharingDesk``, behind ``SharingService``); the provider's operator
decides on the node's own machine (``approve``, ``refuse``, ``revoke``, behind
``bidui provider applications``). Every one of these is an audit record committed in the same
transaction as the change it describes (``AuditLog.append_action``), so the log and the grants
can never disagree.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from sqlalchemy.orm import Session

from provider_node.audit.log import AuditLog
from provider_node.audit.records import AuditEntry
from provider_node.core import errors
from provider_node.core.errors import quote
from provider_node.core.vocabulary import Action, SharingType
from provider_node.core.workdays import china_date
from provider_node.governance import grant_lookup, grants
from provider_node.identity.auth import Caller
from provider_node.resources.catalog import ServedResource
from provider_node.store.models import Application, Grant

__all__ = ["Decision", "SharingDesk", "approve", "refuse", "revoke"]


class SharingDesk:
    """What a department may do about its own applications; thread-safe."""

    def __init__(
        self,
        resources: Mapping[str, ServedResource],
        audit: AuditLog,
        *,
        clock: Callable[[], _dt.datetime] = lambda: _dt.datetime.now(_dt.UTC),
    ) -> None:
        self._resources = resources
        self._audit = audit
        self._clock = clock

    def apply(
        self,
        caller: Caller,
        resource_id: str,
        keys: Iterable[str],
        modes: Iterable[str],
        duty: str,
        items_per_day: int,
        valid_until: _dt.date,
        answers: Iterable[str] = (),
    ) -> Application:
        """Record an application with its decision deadline (5 working days); audited.

        ``answers`` the comparisons under the grant may give; none named: match bits only."""
        served = self._resources.get(resource_id)
        if served is None:
            raise errors.UnknownResourceError(f"no resource {quote(resource_id)} on this node")
        resource = served.resource
        if resource.sharing_type is SharingType.NOT_SHARED:
            raise errors.NotSharedError(
                f"resource {quote(resource_id)} is not shared (article 24): no application can "
                "be granted"
            )
        if resource.sharing_type is SharingType.UNCONDITIONAL:
            raise errors.StateConflictError(
                f"resource {quote(resource_id)} is shared unconditionally: compare without applying"
            )
        keys, modes = list(keys), list(modes)
        unknown = [k for k in keys if k not in resource.comparison_keys]
        if unknown:
            offered = ", ".join(sorted(resource.comparison_keys))
            raise errors.InvalidRequestError(
                f"resource {quote(resource_id)} has no comparison key {quote(unknown[0])} "
                f"(offered: {offered})"
            )
        if any(mode not in resource.modes for mode in modes):
            offered = ", ".join(str(m) for m in resource.modes)
            raise errors.InvalidRequestError(f"resource {quote(resource_id)} offers {offered} only")
        answers = list(answers)
        if any(answer not in resource.answers for answer in answers):
            offered = ", ".join(resource.answers)
            raise errors.InvalidRequestError(
                f"resource {quote(resource_id)} answers {offered} only"
            )
        now = self._clock()

        def submit(session: Session) -> tuple[Application, AuditEntry]:
            application = grants.submit_application(
                session,
                caller.department,
                resource_id,
                keys,
                modes,
                duty,
                items_per_day,
                valid_until,
                now,
                answers,
            )
            session.expunge(application)
            return application, _entry(
                caller.department,
                Action.APPLICATION,
                resource_id,
                f"application {application.id}: keys {', '.join(application.comparison_keys)}; "
                f"modes {', '.join(application.modes)}; answers {', '.join(application.answers)}; "
                f"{application.items_per_day} items per "
                f"day until {application.valid_until}; "
                f"decision due {application.decision_deadline}",
                caller=caller,
                purpose=application.duty,
            )

        return self._audit.append_made(submit)

    def application(self, caller: Caller, application_id: str) -> tuple[Application, Grant | None]:
        """The caller's own application and its grant; another's is reported as missing."""
        # One answer for "no such id" and "another department's": nothing tells them apart.
        missing = errors.UnknownRecordError(f"no application {quote(application_id)}")
        with self._audit.sessions() as session:
            try:
                application = grant_lookup.get_application(session, application_id)
            except (errors.InvalidRequestError, errors.UnknownRecordError):
                raise missing from None
            if application.department != caller.department:
                raise missing
            return application, _grant_of(session, application)

    def applications(
        self, caller: Caller, resource_id: str = ""
    ) -> list[tuple[Application, Grant | None]]:
        """The caller's applications, oldest first, with their grants."""
        with self._audit.sessions() as session:
            found = grant_lookup.list_applications(session, department=caller.department)
            return [
                (a, _grant_of(session, a))
                for a in found
                if not resource_id or a.resource_id == resource_id
            ]


def _grant_of(session: Session, application: Application) -> Grant | None:
    for grant in grant_lookup.list_grants(session, application.department, application.resource_id):
        if grant.application_id == application.id:
            return grant
    return None


@dataclass(frozen=True)
class Decision:
    """An operator's narrowing of an application when approving it; None keeps what was asked."""

    keys: tuple[str, ...] | None = None
    modes: tuple[str, ...] | None = None
    items_per_day: int | None = None
    valid_until: _dt.date | None = None
    answers: tuple[str, ...] | None = None


def approve(
    audit: AuditLog,
    application_id: str,
    *,
    operator: str,
    now: _dt.datetime,
    decision: Decision = Decision(),
    note: str | None = None,
) -> Grant:
    """Approve (perhaps narrowed) and create the grant; audited with the grant's id."""

    def act(session: Session) -> tuple[Grant, AuditEntry]:
        grant = grants.approve(
            session,
            application_id,
            operator,
            now,
            keys=decision.keys,
            modes=decision.modes,
            items_per_day=decision.items_per_day,
            valid_until=decision.valid_until,
            reason=note,
            answers=decision.answers,
        )
        session.expunge(grant)
        application = grant_lookup.get_application(session, application_id)
        on_time = "on time" if china_date(now) <= application.decision_deadline else "late"
        return grant, _entry(
            grant.department,
            Action.APPLICATION_APPROVAL,
            grant.resource_id,
            f"application {application_id} approved {on_time}: keys "
            f"{', '.join(grant.comparison_keys)}; modes {', '.join(grant.modes)}; "
            f"answers {', '.join(grant.answers)}; {grant.items_per_day} items per day, "
            f"{grant.valid_from} to {grant.valid_until}",
            grant_id=grant.id,
            operator=operator,
        )

    return audit.append_made(act)


def refuse(
    audit: AuditLog, application_id: str, reason: str, *, operator: str, now: _dt.datetime
) -> Application:
    """Refuse with the mandatory reason (article 25); audited with it."""

    def act(session: Session) -> tuple[Application, AuditEntry]:
        application = grants.refuse(session, application_id, reason, operator, now)
        session.expunge(application)
        return application, _entry(
            application.department,
            Action.APPLICATION_REFUSAL,
            application.resource_id,
            f"application {application_id} refused: {reason.strip()}",
            operator=operator,
        )

    return audit.append_made(act)


def revoke(
    audit: AuditLog, grant_id: str, reason: str, *, operator: str, now: _dt.datetime
) -> Grant:
    """End a grant from ``now`` on; comparisons under it are refused from then on. Audited."""

    def act(session: Session) -> tuple[Grant, AuditEntry]:
        grant = grants.revoke_grant(session, grant_id, reason, now)
        session.expunge(grant)
        return grant, _entry(
            grant.department,
            Action.GRANT_REVOCATION,
            grant.resource_id,
            f"grant {grant_id} revoked: {reason.strip()}",
            grant_id=grant_id,
            operator=operator,
        )

    return audit.append_made(act)


def _entry(
    department: str,
    action: Action,
    resource_id: str,
    reason: str,
    *,
    caller: Caller | None = None,
    purpose: str = "",
    grant_id: str = "",
    operator: str = "",
) -> AuditEntry:
    """The record of a sharing action: the requester is the department it concerns."""
    return AuditEntry.answered(
        action,
        requester=department,
        cert_fingerprint=caller.cert_fingerprint if caller else "",
        cert_serial=caller.cert_serial if caller else "",
        resource_id=resource_id,
        purpose=purpose[:500],
        grant_id=grant_id,
        # The operator's name goes with the reason: the requester column is the department's.
        reason=(f"by {operator}: {reason}" if operator else reason)[:300],
    )
