"""The one place where the node's errors become gRPC status codes.

The servicer never picks a status code itself: it lets a ``NodeError`` propagate to
``abort_with(context, error)``. Anything that is not a ``NodeError`` is a bug in the node and is
answered INTERNAL without details, so no internal state leaks to the requester.
"""

from __future__ import annotations

import logging
from typing import NoReturn

import grpc

from provider_node.core import errors

_log = logging.getLogger(__name__)


def status_code(error: BaseException) -> grpc.StatusCode:
    """The gRPC status for ``error`` (its class's ``status``); INTERNAL for anything else."""
    if isinstance(error, errors.NodeError):
        return grpc.StatusCode[error.status]
    return grpc.StatusCode.INTERNAL


def abort_with(context: grpc.ServicerContext, error: BaseException) -> NoReturn:
    """End the RPC with the status for ``error``; never returns."""
    code = status_code(error)
    if isinstance(error, errors.NodeError):
        context.abort(code, str(error))
    _log.error("internal error answering %s", type(error).__name__, exc_info=error)
    context.abort(code, "internal error in the provider node; the operator has the details")
