"""The gRPC servicers: protobuf in, ``ProviderNode`` calls, protobuf out. Nothing else.

Every refusal propagates as a ``NodeError`` to ``status.abort_with``, the one place that picks a
status code.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from bidui.v1 import catalog_pb2 as _catalog_pb2
from bidui.v1 import catalog_pb2_grpc as _catalog_pb2_grpc
from bidui.v1 import comparison_pb2 as _comparison_pb2
from bidui.v1 import comparison_pb2_grpc as _comparison_pb2_grpc
from bidui.v1 import sharing_pb2 as _sharing_pb2
from bidui.v1 import sharing_pb2_grpc as _sharing_pb2_grpc
from comparator.keyed_hash import TAG_LENGTH
from provider_node.auth import Authenticator, Caller
from provider_node.config import Answer, ComparisonMode
from provider_node.errors import InvalidRequestError, UnauthenticatedError
from provider_node.messages import CountOutcome, Header, MatchOutcome, VerificationOutcome
from provider_node.metrics import NodeMetrics
from provider_node.models import Application, Grant
from provider_node.node import ProviderNode
from provider_node.resources import (
    ANSWERS_TO_PROTO,
    MODES_TO_PROTO,
    ServedResource,
    resource_to_proto,
)
from provider_node.sharing import SharingDesk
from provider_node.status import abort_with

_T = TypeVar("_T")


def _guarded(context: grpc.ServicerContext, call: Callable[[], _T]) -> _T:
    if (remaining := context.time_remaining()) is not None and remaining <= 0:
        context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "deadline passed before work began")
    try:
        return call()
    except Exception as error:  # NodeError -> its status; anything else -> INTERNAL
        abort_with(context, error)


class _Base:
    def __init__(self, node: ProviderNode, authenticator: Authenticator) -> None:
        self._node = node
        self._authenticator = authenticator

    def _caller(self, context: grpc.ServicerContext, action: str, resource_id: str = "") -> Caller:
        """Every handler's first step: the department behind the RPC, or an audited refusal."""
        try:
            return self._authenticator.caller(context)
        except UnauthenticatedError as refusal:
            self._node.refuse_unauthenticated(refusal, action, resource_id)
            raise


_ANSWERS: dict[int, Answer] = {number: answer for answer, number in ANSWERS_TO_PROTO.items()}
_T_OUT = TypeVar("_T_OUT", MatchOutcome, VerificationOutcome, CountOutcome)


def _header(message: _comparison_pb2.ComparisonHeader, unspecified: Answer) -> Header:
    """The node's header; ``ANSWER_UNSPECIFIED`` reads as ``unspecified`` (the RPC's answer), a
    number the node does not know as None (refused, and audited, by the node)."""
    answer = (
        unspecified
        if message.answer == _catalog_pb2.ANSWER_UNSPECIFIED
        else _ANSWERS.get(message.answer)
    )
    return Header(
        resource_id=message.resource_id,
        comparison_key=message.comparison_key,
        purpose=message.purpose,
        request_id=message.request_id,
        key_version=message.key_version,
        grant_id=message.grant_id,
        answer=answer,
        verify_fields=tuple(message.verify_fields),
        verifiable=message.verifiable,
    )


def _of(kind: type[_T_OUT], outcome: object) -> _T_OUT:
    if not isinstance(outcome, kind):  # the node answers what the RPC asked: never happens
        raise TypeError(f"expected {kind.__name__}, got {type(outcome).__name__}")
    return outcome


def _match_result(outcome: object) -> _comparison_pb2.MatchResult:
    match = _of(MatchOutcome, outcome)
    return _comparison_pb2.MatchResult(
        match_bits=match.match_bits,
        item_count=match.item_count,
        match_count=match.match_count,
        comparison_id=match.comparison_id,
    )


def _verification_result(outcome: object) -> _comparison_pb2.VerificationResult:
    verified = _of(VerificationOutcome, outcome)
    return _comparison_pb2.VerificationResult(
        outcomes=verified.outcomes,
        mismatch_bits=verified.mismatch_bits,
        record_count=verified.record_count,
        not_found_count=verified.not_found,
        consistent_count=verified.consistent,
        inconsistent_count=verified.inconsistent,
        comparison_id=verified.comparison_id,
    )


def _count_result(outcome: object) -> _comparison_pb2.CountResult:
    counted = _of(CountOutcome, outcome)
    return _comparison_pb2.CountResult(
        item_count=counted.item_count,
        match_count=counted.match_count,
        comparison_id=counted.comparison_id,
    )


def _resource_message(served: ServedResource) -> _catalog_pb2.Resource:
    # Record counts only where the operator allows it (resource_to_proto checks).
    count = max((len(index) for index in served.indexes.values()), default=None)
    return resource_to_proto(
        served.resource,
        oprf_public_key=served.oprf_public_key,
        last_refresh=served.last_refresh,
        record_count=count,
    )


class CatalogServicer(_Base, _catalog_pb2_grpc.CatalogServiceServicer):
    def ListResources(
        self, request: _catalog_pb2.ListResourcesRequest, context: grpc.ServicerContext
    ) -> _catalog_pb2.ListResourcesResponse:
        def call() -> _catalog_pb2.ListResourcesResponse:
            self._caller(context, "catalog_read")
            served = self._node.resources.values()
            return _catalog_pb2.ListResourcesResponse(
                resources=[_resource_message(s) for s in served]
            )

        return _guarded(context, call)

    def DescribeResource(
        self, request: _catalog_pb2.DescribeResourceRequest, context: grpc.ServicerContext
    ) -> _catalog_pb2.Resource:
        def call() -> _catalog_pb2.Resource:
            self._caller(context, "catalog_read", request.resource_id)
            return _resource_message(self._node.describe(request.resource_id))

        return _guarded(context, call)

    def GetHashKey(
        self, request: _catalog_pb2.GetHashKeyRequest, context: grpc.ServicerContext
    ) -> _catalog_pb2.GetHashKeyResponse:
        def call() -> _catalog_pb2.GetHashKeyResponse:
            caller = self._caller(context, "hash_key_fetch", request.resource_id)
            key, version = self._node.hash_key(caller, request.resource_id, request.comparison_key)
            return _catalog_pb2.GetHashKeyResponse(
                hmac_key=key, key_version=version, tag_length=TAG_LENGTH
            )

        return _guarded(context, call)


class ComparisonServicer(_Base, _comparison_pb2_grpc.ComparisonServiceServicer):
    """Each answer has its RPCs: match bits, verification, count (hashed in one, blinded as
    ``BlindEvaluate`` then the answer's second step)."""

    def _hashed(
        self,
        request: _comparison_pb2.CompareHashedRequest,
        context: grpc.ServicerContext,
        answer: Answer,
        result: Callable[[object], _T],
    ) -> _T:
        def call() -> _T:
            caller = self._caller(context, "comparison", request.header.resource_id)
            header = _header(request.header, answer)
            return result(self._node.compare_hashed(caller, header, request.tags, answer))

        return _guarded(context, call)

    def _blinded(
        self,
        request: _comparison_pb2.MatchBlindedRequest,
        context: grpc.ServicerContext,
        answer: Answer,
        result: Callable[[object], _T],
    ) -> _T:
        def call() -> _T:
            caller = self._caller(context, "comparison")
            outcome = self._node.match_blinded(
                caller, request.comparison_id, request.outputs, answer
            )
            return result(outcome)

        return _guarded(context, call)

    def CompareHashed(
        self, request: _comparison_pb2.CompareHashedRequest, context: grpc.ServicerContext
    ) -> _comparison_pb2.MatchResult:
        return self._hashed(request, context, Answer.MATCH, _match_result)

    def VerifyHashed(
        self, request: _comparison_pb2.CompareHashedRequest, context: grpc.ServicerContext
    ) -> _comparison_pb2.VerificationResult:
        return self._hashed(request, context, Answer.VERIFY, _verification_result)

    def CountHashed(
        self, request: _comparison_pb2.CompareHashedRequest, context: grpc.ServicerContext
    ) -> _comparison_pb2.CountResult:
        return self._hashed(request, context, Answer.COUNT, _count_result)

    def BlindEvaluate(
        self, request: _comparison_pb2.BlindEvaluateRequest, context: grpc.ServicerContext
    ) -> _comparison_pb2.BlindEvaluateResponse:
        def call() -> _comparison_pb2.BlindEvaluateResponse:
            caller = self._caller(context, "comparison", request.header.resource_id)
            outcome = self._node.blind_evaluate(
                caller, _header(request.header, Answer.MATCH), request.blinded_elements
            )
            return _comparison_pb2.BlindEvaluateResponse(
                comparison_id=outcome.comparison_id,
                evaluated_elements=outcome.evaluation.elements,
                proof=outcome.evaluation.proof or b"",
                key_version=outcome.key_version,
            )

        return _guarded(context, call)

    def MatchBlinded(
        self, request: _comparison_pb2.MatchBlindedRequest, context: grpc.ServicerContext
    ) -> _comparison_pb2.MatchResult:
        return self._blinded(request, context, Answer.MATCH, _match_result)

    def VerifyBlinded(
        self, request: _comparison_pb2.MatchBlindedRequest, context: grpc.ServicerContext
    ) -> _comparison_pb2.VerificationResult:
        return self._blinded(request, context, Answer.VERIFY, _verification_result)

    def CountBlinded(
        self, request: _comparison_pb2.MatchBlindedRequest, context: grpc.ServicerContext
    ) -> _comparison_pb2.CountResult:
        return self._blinded(request, context, Answer.COUNT, _count_result)


class SharingServicer(_Base, _sharing_pb2_grpc.SharingServiceServicer):
    """Applications for conditional resources (article 25); decisions are the operator's."""

    def __init__(self, node: ProviderNode, authenticator: Authenticator, desk: SharingDesk) -> None:
        super().__init__(node, authenticator)
        self._desk = desk

    def Apply(
        self, request: _sharing_pb2.ApplyRequest, context: grpc.ServicerContext
    ) -> _sharing_pb2.Application:
        def call() -> _sharing_pb2.Application:
            caller = self._caller(context, "application", request.resource_id)
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

        return _guarded(context, call)

    def GetApplication(
        self, request: _sharing_pb2.GetApplicationRequest, context: grpc.ServicerContext
    ) -> _sharing_pb2.Application:
        def call() -> _sharing_pb2.Application:
            caller = self._caller(context, "application_read")
            return _application_message(*self._desk.application(caller, request.application_id))

        return _guarded(context, call)

    def ListApplications(
        self, request: _sharing_pb2.ListApplicationsRequest, context: grpc.ServicerContext
    ) -> _sharing_pb2.ListApplicationsResponse:
        def call() -> _sharing_pb2.ListApplicationsResponse:
            caller = self._caller(context, "application_read")
            found = self._desk.applications(caller, request.resource_id)
            return _sharing_pb2.ListApplicationsResponse(
                applications=[_application_message(a, g) for a, g in found]
            )

        return _guarded(context, call)


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
        return [str(_ANSWERS[answer]) for answer in answers]
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


def _timestamp(moment: dt.datetime | None) -> Timestamp | None:
    if moment is None:
        return None
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


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
        submitted_at=_timestamp(application.submitted_at),
        decision_deadline=application.decision_deadline.isoformat(),
        status=_STATUSES[application.status],
        decided_at=_timestamp(application.decided_at),
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
                revoked_at=_timestamp(grant.revoked_at),
                revocation_reason=grant.revocation_reason or "",
                answers=_answers_to_proto(grant.answers),
            )
        )
    return message


class RpcMetricsInterceptor(grpc.ServerInterceptor):
    """Times every unary RPC into ``bidui_rpc_duration_seconds{method}``."""

    def __init__(self, metrics: NodeMetrics) -> None:
        self._metrics = metrics

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler[Any, Any] | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        method = handler_call_details.method.rsplit("/", 1)[-1]
        inner = handler.unary_unary
        metrics = self._metrics

        def timed(request: Any, context: grpc.ServicerContext) -> Any:
            started = time.perf_counter()
            try:
                return inner(request, context)
            finally:
                metrics.observe_rpc(method, time.perf_counter() - started)

        return grpc.unary_unary_rpc_method_handler(
            timed,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
