"""What every gRPC servicer shares: the deadline check and error mapping (``guarded``), the
authenticated caller (``ServicerBase``), proto conversions, and the RPC timing interceptor.

The servicers themselves, one per service (``catalog_servicer``, ``comparison_servicer``,
``sharing_servicer``, ``discrepancy_servicer``), turn protobuf into library calls and back,
nothing else. Every refusal propagates as a ``NodeError`` to ``status.abort_with``, the one place
that picks a status code.
"""

from __future__ import annotations

import datetime as dt
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from provider_node.comparison.node import ProviderNode
from provider_node.core.errors import UnauthenticatedError
from provider_node.core.vocabulary import Action, Answer
from provider_node.identity.auth import Authenticator, Caller
from provider_node.observability.metrics import NodeMetrics
from provider_node.transport.catalog_proto import ANSWERS_TO_PROTO
from provider_node.transport.status import abort_with

__all__ = [
    "ANSWERS_FROM_PROTO",
    "RpcMetricsInterceptor",
    "ServicerBase",
    "guarded",
    "timestamp",
]

_T = TypeVar("_T")


def guarded(context: grpc.ServicerContext, call: Callable[[], _T]) -> _T:
    if (remaining := context.time_remaining()) is not None and remaining <= 0:
        context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "deadline passed before work began")
    try:
        return call()
    except Exception as error:  # NodeError -> its status; anything else -> INTERNAL
        abort_with(context, error)


class ServicerBase:
    def __init__(self, node: ProviderNode, authenticator: Authenticator) -> None:
        self._node = node
        self._authenticator = authenticator

    def _caller(
        self, context: grpc.ServicerContext, action: Action, resource_id: str = ""
    ) -> Caller:
        """Every handler's first step: the department behind the RPC, or an audited refusal."""
        try:
            return self._authenticator.caller(context)
        except UnauthenticatedError as refusal:
            self._node.refuse_unauthenticated(refusal, action, resource_id)
            raise


ANSWERS_FROM_PROTO: dict[int, Answer] = {
    number: answer for answer, number in ANSWERS_TO_PROTO.items()
}


def timestamp(moment: dt.datetime | None) -> Timestamp | None:
    if moment is None:
        return None
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


class RpcMetricsInterceptor(grpc.aio.ServerInterceptor):
    """Times every unary RPC into ``bidui_rpc_duration_seconds{method}``: the handler's time, on
    its thread, once the request has arrived."""

    def __init__(self, metrics: NodeMetrics) -> None:
        self._metrics = metrics

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(handler_call_details)
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

        async def timed_async(request: Any, context: grpc.ServicerContext) -> Any:
            started = time.perf_counter()
            try:
                return await inner(request, context)
            finally:
                metrics.observe_rpc(method, time.perf_counter() - started)

        # The node's handlers run on the thread pool; the asyncio health service's on the loop.
        return grpc.unary_unary_rpc_method_handler(
            timed_async if inspect.iscoroutinefunction(inner) else timed,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
