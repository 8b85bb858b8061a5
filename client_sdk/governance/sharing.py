"""Conditional resources, the requester's side (articles 24, 25, 31): apply, then see the decision.

::

    apply(resource, keys, modes, duty, items_per_day, valid_until)     Apply
      -> Application PENDING, decision_deadline 5 Chinese working days after submission
    the provider's operator approves (perhaps narrower) or refuses with a reason, on the node's
    own machine, never over this API
    application(id), applications(resource)                            GetApplication, List...
      -> Application APPROVED with its Grant, or REFUSED with decision_reason
    compare(..., grant_id=application.grant.id)    (optional: the node finds the covering grant)

What comes back are this module's frozen dataclasses, not protobuf messages: calendar dates (in
China) as ``datetime.date``, instants as timezone-aware UTC datetimes, the status as
:class:`ApplicationStatus`. A department sees only its own applications; another's id is
reported as missing (:class:`ResourceNotFoundError`).

Reading is retried like every other call. Apply is retried only while no connection to the node
is made: an application is a record at the node, so an Apply whose connection failed after it
was sent may be on file already. Then the error says to look at
:meth:`SharingCalls.applications` before applying again, rather than the SDK applying twice.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from bidui.v1 import sharing_pb2 as _sharing_pb2
from bidui.v1 import sharing_pb2_grpc as _sharing_pb2_grpc
from client_sdk.comparison.catalog import (
    AnswerName,
    ComparisonMode,
    answer_to_wire,
    answers_from_wire,
    mode_from_wire,
    mode_to_wire,
)
from client_sdk.connection.retry import NodeCalls
from client_sdk.errors import InvalidRequestError, ServiceError
from client_sdk.governance.received import node_date, node_instant

__all__ = [
    "Application",
    "ApplicationStatus",
    "Grant",
    "SharingCalls",
    "application_from_message",
]

_MAX_ITEMS = 2**64 - 1  # items_per_day is a uint64 on the wire; the node sets its own bound


class ApplicationStatus(StrEnum):
    """Where an application stands: waiting for the operator, or decided."""

    PENDING = "pending"
    APPROVED = "approved"
    REFUSED = "refused"


_STATUSES = {
    _sharing_pb2.APPLICATION_STATUS_PENDING: ApplicationStatus.PENDING,
    _sharing_pb2.APPLICATION_STATUS_APPROVED: ApplicationStatus.APPROVED,
    _sharing_pb2.APPLICATION_STATUS_REFUSED: ApplicationStatus.REFUSED,
}


@dataclass(frozen=True)
class Grant:
    """What the operator approved: perhaps fewer keys or modes, fewer items per day or an earlier
    end than applied for. Valid from ``valid_from`` to ``valid_until`` inclusive (dates in
    China) unless revoked; each day's comparisons count against ``items_per_day``."""

    id: str
    comparison_keys: tuple[str, ...]
    modes: tuple[ComparisonMode, ...]
    items_per_day: int
    valid_from: _dt.date
    valid_until: _dt.date
    revoked_at: _dt.datetime | None = None
    revocation_reason: str = ""
    #: What comparisons under the grant may answer; a grant older than answers: match bits.
    answers: tuple[AnswerName, ...] = ("match",)


@dataclass(frozen=True)
class Application:
    """An application for a conditional resource, as the node keeps it (article 25).

    ``decision_deadline`` is the last day (in China) for the operator's decision; ``decided_at``
    and ``decision_reason`` (mandatory for a refusal) are set once decided, ``grant`` once
    approved.
    """

    id: str
    department: str
    resource_id: str
    comparison_keys: tuple[str, ...]
    modes: tuple[ComparisonMode, ...]
    duty: str
    items_per_day: int
    valid_until: _dt.date
    submitted_at: _dt.datetime
    decision_deadline: _dt.date
    status: ApplicationStatus
    decided_at: _dt.datetime | None = None
    decision_reason: str = ""
    grant: Grant | None = None
    #: The answers applied for (match bits, verification, count).
    answers: tuple[AnswerName, ...] = ("match",)
    #: ``decision_deadline`` was counted past the node's working-day calendar (weekdays less the
    #: fixed-date holidays): the node recounts it once that year is announced.
    deadline_provisional: bool = False


class SharingCalls:
    """The SharingService calls of a client: :class:`ComparisonClient` has them."""

    def __init__(self, stub: _sharing_pb2_grpc.SharingServiceStub, calls: NodeCalls) -> None:
        self._sharing_stub = stub
        self._calls = calls

    def apply(
        self,
        resource_id: str,
        *,
        keys: Sequence[str],
        modes: Sequence[ComparisonMode],
        duty: str,
        items_per_day: int,
        valid_until: _dt.date,
        answers: Sequence[AnswerName] = ("match",),
    ) -> Application:
        """Apply for a conditional resource (article 25); returns the PENDING application.

        ``keys`` are the comparison keys and ``modes`` the modes asked for, ``duty`` the duty the
        comparisons serve (article 31; audited, so no personal data), ``items_per_day`` the
        records to compare per day (China time), ``valid_until`` the last day. The operator
        decides by ``decision_deadline`` (5 Chinese working days), perhaps narrower than asked.
        ``answers`` are what the comparisons may answer: ``"match"`` bits, ``"verify"``
        (verification) and ``"count"``, each its own permission (default: match bits only).
        A resource shared unconditionally is refused :class:`InvalidRequestError` (compare
        without applying); a node whose working-day calendar ends before the deadline
        :class:`ServiceError` (its operator must update it).
        """
        if not resource_id:
            raise InvalidRequestError("resource_id must not be empty")
        for name, names in (("keys", keys), ("modes", modes), ("answers", answers)):
            if isinstance(names, str) or not names or not all(isinstance(n, str) for n in names):
                raise InvalidRequestError(f"{name} must be a non-empty list of names, like ['x']")
        if not duty or not duty.strip():
            raise InvalidRequestError("duty must state the duty the comparisons serve (article 31)")
        whole = isinstance(items_per_day, int) and not isinstance(items_per_day, bool)
        if not whole or not 1 <= items_per_day <= _MAX_ITEMS:
            raise InvalidRequestError("items_per_day must be a whole number of at least 1")
        if isinstance(valid_until, _dt.datetime) or not isinstance(valid_until, _dt.date):
            raise InvalidRequestError("valid_until must be a datetime.date (the last day, China)")
        request = _sharing_pb2.ApplyRequest(
            resource_id=resource_id,
            comparison_keys=list(keys),
            modes=[mode_to_wire(mode) for mode in modes],
            duty=duty,
            items_per_day=items_per_day,
            valid_until=valid_until.isoformat(),
            # Left out for match bits only: what a node older than answers understands.
            answers=[] if tuple(answers) == ("match",) else [answer_to_wire(a) for a in answers],
        )
        message = self._calls.recording(
            f"Apply {resource_id!r}",
            self._sharing_stub.Apply,
            request,
            note="the node may have recorded the application before the answer was lost: "
            f"see applications({resource_id!r}) before applying again",
        )
        return application_from_message(message)

    def application(self, application_id: str) -> Application:
        """One of this department's applications, with its decision and grant
        (:class:`ResourceNotFoundError` for any other id)."""
        if not application_id:
            raise InvalidRequestError("application_id must not be empty")
        message = self._calls.unary(
            f"GetApplication {application_id!r}",
            self._sharing_stub.GetApplication,
            _sharing_pb2.GetApplicationRequest(application_id=application_id),
        )
        return application_from_message(message)

    def applications(self, resource_id: str | None = None) -> list[Application]:
        """This department's applications (for ``resource_id`` only, if given), oldest first."""
        response = self._calls.unary(
            "ListApplications",
            self._sharing_stub.ListApplications,
            _sharing_pb2.ListApplicationsRequest(resource_id=resource_id or ""),
        )
        return [application_from_message(message) for message in response.applications]


def application_from_message(message: _sharing_pb2.Application) -> Application:
    """The SDK's :class:`Application` for the node's message; ServiceError if it is malformed."""
    where = f"application {message.id!r}"
    status = _STATUSES.get(message.status)
    if status is None:
        raise ServiceError(f"the node sent {where} without a known status")
    if not message.HasField("submitted_at"):
        raise ServiceError(f"the node sent {where} without submitted_at")
    grant = _grant(message.grant, where) if message.HasField("grant") else None
    return Application(
        id=message.id,
        department=message.department,
        resource_id=message.resource_id,
        comparison_keys=tuple(message.comparison_keys),
        modes=_modes(message.modes, where),
        duty=message.duty,
        items_per_day=message.items_per_day,
        valid_until=node_date(message.valid_until, "valid_until", where),
        submitted_at=node_instant(message.submitted_at),
        decision_deadline=node_date(message.decision_deadline, "decision_deadline", where),
        deadline_provisional=message.deadline_provisional,
        status=status,
        decided_at=node_instant(message.decided_at) if message.HasField("decided_at") else None,
        decision_reason=message.decision_reason,
        grant=grant,
        answers=answers_from_wire(message.answers),
    )


def _grant(message: _sharing_pb2.Grant, application: str) -> Grant:
    where = f"the grant of {application}"
    return Grant(
        id=message.id,
        comparison_keys=tuple(message.comparison_keys),
        modes=_modes(message.modes, where),
        items_per_day=message.items_per_day,
        valid_from=node_date(message.valid_from, "valid_from", where),
        valid_until=node_date(message.valid_until, "valid_until", where),
        revoked_at=node_instant(message.revoked_at) if message.HasField("revoked_at") else None,
        revocation_reason=message.revocation_reason,
        answers=answers_from_wire(message.answers),
    )


def _modes(numbers: Sequence[int], where: str) -> tuple[ComparisonMode, ...]:
    modes = [mode_from_wire(number) for number in numbers]
    known = tuple(mode for mode in modes if mode is not None)
    if len(known) != len(modes):
        raise ServiceError(f"the node sent {where} with a mode this SDK does not speak")
    return known
