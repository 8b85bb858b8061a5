"""The gRPC servicers: protobuf in, ``ProviderNode`` calls, protobuf out. Nothing else.

Every refusal propagates as a ``NodeError`` to ``status.abort_with``, the one place that picks a
status code.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

import grpc

from bidui.v1 import catalog_pb2 as _catalog_pb2
from bidui.v1 import catalog_pb2_grpc as _catalog_pb2_grpc
from bidui.v1 import comparison_pb2 as _comparison_pb2
from bidui.v1 import comparison_pb2_grpc as _comparison_pb2_grpc
from comparator.keyed_hash import TAG_LENGTH
from provider_node.auth import Authenticator, Caller
from provider_node.errors import UnauthenticatedError
from provider_node.metrics import NodeMetrics
from provider_node.node import Header, MatchOutcome, ProviderNode, ServedResource
from provider_node.resources import resource_to_proto
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


def _header(message: _comparison_pb2.ComparisonHeader) -> Header:
    return Header(
        resource_id=message.resource_id,
        comparison_key=message.comparison_key,
        purpose=message.purpose,
        request_id=message.request_id,
        key_version=message.key_version,
    )


def _match_result(outcome: MatchOutcome) -> _comparison_pb2.MatchResult:
    return _comparison_pb2.MatchResult(
        match_bits=outcome.match_bits,
        item_count=outcome.item_count,
        match_count=outcome.match_count,
        comparison_id=outcome.comparison_id,
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
    def CompareHashed(
        self, request: _comparison_pb2.CompareHashedRequest, context: grpc.ServicerContext
    ) -> _comparison_pb2.MatchResult:
        def call() -> _comparison_pb2.MatchResult:
            caller = self._caller(context, "comparison", request.header.resource_id)
            outcome = self._node.compare_hashed(caller, _header(request.header), request.tags)
            return _match_result(outcome)

        return _guarded(context, call)

    def BlindEvaluate(
        self, request: _comparison_pb2.BlindEvaluateRequest, context: grpc.ServicerContext
    ) -> _comparison_pb2.BlindEvaluateResponse:
        def call() -> _comparison_pb2.BlindEvaluateResponse:
            caller = self._caller(context, "comparison", request.header.resource_id)
            outcome = self._node.blind_evaluate(
                caller, _header(request.header), request.blinded_elements
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
        def call() -> _comparison_pb2.MatchResult:
            caller = self._caller(context, "comparison")
            outcome = self._node.match_blinded(caller, request.comparison_id, request.outputs)
            return _match_result(outcome)

        return _guarded(context, call)


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
