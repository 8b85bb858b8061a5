"""The one place where the node's errors become gRPC status codes.

The servicer never picks a status code itself: it lets a ``NodeError`` propagate to
``abort_with(context, error)``. Anything that is not a ``NodeError`` is a bug in the node and is
answered INTERNAL without details, so no internal state leaks to the requester.
"""

from __future__ import annotations

import logging
from typing import NoReturn

import grpc

from provider_node import errors

_log = logging.getLogger(__name__)

_CODES: dict[type[errors.NodeError], grpc.StatusCode] = {
    errors.UnauthenticatedError: grpc.StatusCode.UNAUTHENTICATED,
    errors.UnknownResourceError: grpc.StatusCode.NOT_FOUND,
    errors.NotSharedError: grpc.StatusCode.PERMISSION_DENIED,
    errors.NotGrantedError: grpc.StatusCode.PERMISSION_DENIED,
    errors.InvalidRequestError: grpc.StatusCode.INVALID_ARGUMENT,
    errors.BatchTooLargeError: grpc.StatusCode.INVALID_ARGUMENT,
    errors.KeyVersionMismatchError: grpc.StatusCode.FAILED_PRECONDITION,
    errors.ModeNotOfferedError: grpc.StatusCode.FAILED_PRECONDITION,
    errors.SessionExpiredError: grpc.StatusCode.FAILED_PRECONDITION,
    errors.TooManySessionsError: grpc.StatusCode.RESOURCE_EXHAUSTED,
    errors.RateLimitedError: grpc.StatusCode.RESOURCE_EXHAUSTED,
    errors.AuditUnavailableError: grpc.StatusCode.UNAVAILABLE,
    errors.CalendarRangeError: grpc.StatusCode.FAILED_PRECONDITION,
    errors.UnknownRecordError: grpc.StatusCode.NOT_FOUND,
    errors.StateConflictError: grpc.StatusCode.FAILED_PRECONDITION,
    errors.ApprovalTooWideError: grpc.StatusCode.INVALID_ARGUMENT,
    errors.GrantRefusal: grpc.StatusCode.PERMISSION_DENIED,
    errors.QuotaExceededError: grpc.StatusCode.RESOURCE_EXHAUSTED,
}


def status_code(error: BaseException) -> grpc.StatusCode:
    """The gRPC status for ``error``; INTERNAL for anything that is not a ``NodeError``."""
    for cls in type(error).__mro__:
        code = _CODES.get(cls)
        if code is not None:
            return code
    return grpc.StatusCode.INTERNAL


def abort_with(context: grpc.ServicerContext, error: BaseException) -> NoReturn:
    """End the RPC with the status for ``error``; never returns."""
    code = status_code(error)
    if isinstance(error, errors.NodeError):
        context.abort(code, str(error))
    _log.error("internal error answering %s", type(error).__name__, exc_info=error)
    context.abort(code, "internal error in the provider node; the operator has the details")
