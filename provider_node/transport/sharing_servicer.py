"""The SharingService servicer (article 25): protobuf in, ``SharingDesk`` calls, protobuf out.
Nothing else; refusals reach ``status.abort_with`` through ``servicer.guarded``."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

import grpc

from bidui.v1 import catalog_pb2 as _catalog_pb2
from bidui.v1 import sharing_pb2 as _sharing_pb2
from bidui.v1 import sharing_pb2_grpc as _sharing_pb2_grpc
from provider_node.comparison.node import ProviderNode
from provider_node.core.errors import InvalidRequestError
from provider_node.core.vocabulary import Action, Answer, ComparisonMode
from provider_node.governance.sharing import SharingDesk
from provider_node.identity.auth import Authenticator
from provider_node.store.models import Application, Grant
from provider_node.transport.catalog_proto import ANSWERS_TO_PROTO, MODES_TO_PROTO
from provider_node.transport.guarded import ANSWERS_FROM_PROTO, ServicerBase, guarded, timestamp

__all__ = ["SharingServicer"]


class SharingServicer(ServicerBase, _sharing_pb2_grpc.SharingServiceServicer):
    """Applications for conditional resources (article 25); decisions are the operator's."""

    def __init__(self, node: ProviderNode, authenticator: Authenticator, desk: SharingDesk) -> None:
        super().__init__(node, authenticator)
        self._desk = desk

    def Apply(
        self, request: _sharing_pb2.ApplyRequest, context: grpc.ServicerContext
    ) -> _sharing_pb2.Application:
        def call() -> _sharing_pb2.Application:
            caller = self._caller(context, Action.APPLICATION, request.resource_id)
            application = self._desk.apply(
                caller,
                request.resource_id,
                request.comparison_keys,
                _mode_names(request.modes),
                request.duty,
                request.items_per_day,
                _date(request.valid_until, "valid_until"),
                _answer_names(request.answers),
            )
            return _application_message(application, None)

        return guarded(context, call)

    def GetApplication(
        self, request: _sharing_pb2.GetApplicationRequest, context: grpc.ServicerContext
    ) -> _sharing_pb2.Application:
        def call() -> _sharing_pb2.Application:
            caller = self._caller(context, Action.APPLICATION_READ)
            return _application_message(*self._desk.application(caller, request.application_id))

        return guarded(context, call)

    def ListApplications(
        self, request: _sharing_pb2.ListApplicationsRequest, context: grpc.ServicerContext
    ) -> _sharing_pb2.ListApplicationsResponse:
        def call() -> _sharing_pb2.ListApplicationsResponse:
            caller = self._caller(context, Action.APPLICATION_READ)
            found = self._desk.applications(caller, request.resource_id)
            return _sharing_pb2.ListApplicationsResponse(
                applications=[_application_message(a, g) for a, g in found]
            )

        return guarded(context, call)


_MODE_NAMES: dict[int, str] = {number: str(mode) for mode, number in MODES_TO_PROTO.items()}
_STATUSES = {
    "pending": _sharing_pb2.APPLICATION_STATUS_PENDING,
    "approved": _sharing_pb2.APPLICATION_STATUS_APPROVED,
    "refused": _sharing_pb2.APPLICATION_STATUS_REFUSED,
}


def _mode_names(modes: Iterable[int]) -> list[str]:
    try:
        return [_MODE_NAMES[mode] for mode in modes]
    except KeyError:
        raise InvalidRequestError("modes must be MODE_HASHED or MODE_BLINDED") from None


def _answer_names(answers: Iterable[int]) -> list[str]:
    try:
        return [str(ANSWERS_FROM_PROTO[answer]) for answer in answers]
    except KeyError:
        raise InvalidRequestError(
            "answers must be ANSWER_MATCH, ANSWER_VERIFY or ANSWER_COUNT"
        ) from None


def _answers_to_proto(answers: Iterable[str]) -> list[_catalog_pb2.Answer.ValueType]:
    return [ANSWERS_TO_PROTO[Answer(answer)] for answer in answers]


def _date(text: str, name: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise InvalidRequestError(f"{name} must be a date written YYYY-MM-DD") from None


def _application_message(application: Application, grant: Grant | None) -> _sharing_pb2.Application:
    message = _sharing_pb2.Application(
        id=application.id,
        department=application.department,
        resource_id=application.resource_id,
        comparison_keys=application.comparison_keys,
        modes=[MODES_TO_PROTO[ComparisonMode(m)] for m in application.modes],
        duty=application.duty,
        items_per_day=application.items_per_day,
        valid_until=application.valid_until.isoformat(),
        submitted_at=timestamp(application.submitted_at),
        decision_deadline=application.decision_deadline.isoformat(),
        deadline_provisional=application.deadline_provisional,
        status=_STATUSES[application.status],
        decided_at=timestamp(application.decided_at),
        decision_reason=application.decision_reason or "",
        answers=_answers_to_proto(application.answers),
    )
    if grant is not None:
        message.grant.CopyFrom(
            _sharing_pb2.Grant(
                id=grant.id,
                comparison_keys=grant.comparison_keys,
                modes=[MODES_TO_PROTO[ComparisonMode(m)] for m in grant.modes],
                items_per_day=grant.items_per_day,
                valid_from=grant.valid_from.isoformat(),
                valid_until=grant.valid_until.isoformat(),
                revoked_at=timestamp(grant.revoked_at),
                revocation_reason=grant.revocation_reason or "",
                answers=_answers_to_proto(grant.answers),
            )
        )
    return message
