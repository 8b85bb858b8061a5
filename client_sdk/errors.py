"""Exceptions raised by the client SDK, one class per failure class.

A small flat hierarchy under ``BiduiError``. gRPC status codes are turned into these classes in one
place, :func:`error_from_status` (and :func:`error_from_rpc`, which reads the status of a failed
call). Each class says whether the failure is the caller's to fix (``user_error``: bad input, bad
certificate, unknown resource, no grant) or the service's (unavailable, timed out, misbehaving);
the CLI turns that into its exit code.

Messages never contain record values, keys or certificate contents.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import grpc

from client_sdk.connection_failures import ConnectionFailure, classify, likely_cause

__all__ = [
    "AuthenticationError",
    "BiduiError",
    "CredentialsError",
    "CsvInputError",
    "CsvOutputError",
    "DeadlineExceededError",
    "InvalidRequestError",
    "PermissionDeniedError",
    "ProofVerificationError",
    "QuotaExceededError",
    "ResourceNotFoundError",
    "ServiceError",
    "ServiceUnavailableError",
    "error_from_rpc",
    "error_from_status",
    "is_tls_failure",
    "rpc_status",
    "with_note",
]


class BiduiError(Exception):
    """Base class of every error raised by ``client_sdk``.

    ``code`` is the gRPC status the node answered with, when the error came from the node.
    """

    #: True when the caller can fix the cause (input, certificate, resource name, grant).
    user_error: bool = False

    def __init__(self, message: str, *, code: grpc.StatusCode | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class AuthenticationError(BiduiError):
    """The node did not accept our identity (UNAUTHENTICATED, or the TLS handshake failed)."""

    user_error = True


class PermissionDeniedError(BiduiError):
    """The node refused the request: not shared, no grant, mode not allowed (PERMISSION_DENIED)."""

    user_error = True


class ResourceNotFoundError(BiduiError):
    """The node has no such resource or comparison key, or none of the caller's applications or
    grants has that id (NOT_FOUND; another department's are reported missing too)."""

    user_error = True


class InvalidRequestError(BiduiError, ValueError):
    """The request was invalid: bad argument, out of range, or a failed precondition such as a key
    version that no longer matches the node's (INVALID_ARGUMENT, OUT_OF_RANGE, FAILED_PRECONDITION).
    """

    user_error = True


class QuotaExceededError(BiduiError):
    """The requester's quota or rate limit at the node is used up (RESOURCE_EXHAUSTED).

    A quota refusal's message is the node's: what remains of the allowance (a grant's items per
    day, or the department's per minute) and when it resets. It is not retried. Open blinded
    sessions at their cap are waited for first (``client_sdk.connection.retry``) and raised as this
    class
    only when the deadline or the retries run out.
    """

    user_error = True


class ServiceUnavailableError(BiduiError):
    """The node could not be reached or could not serve the request, after retries (UNAVAILABLE)."""


class DeadlineExceededError(BiduiError):
    """The request did not complete within its deadline (DEADLINE_EXCEEDED)."""


class ProofVerificationError(BiduiError):
    """The node's DLEQ proof did not verify, or its evaluated elements were malformed.

    Either the node misbehaved or its OPRF key changed since the catalog entry was read. No result
    is returned for the records concerned.
    """


class ServiceError(BiduiError):
    """Any other failure of the node (INTERNAL, UNKNOWN, UNIMPLEMENTED, a malformed answer...)."""


class CredentialsError(BiduiError):
    """A CA certificate, client certificate or client key file is missing, unreadable or invalid,
    or a new key and certificate request cannot be made (``client_sdk.governance.enrolment``)."""

    user_error = True


class CsvInputError(BiduiError, ValueError):
    """The input CSV is missing, malformed or lacks a required column.

    ``line`` is the 1-based line number in the file (the header is line 1), when known.
    """

    user_error = True

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None) -> None:
        where = path or "input"
        if line is not None:
            where = f"{where}, line {line}"
        super().__init__(f"{where}: {message}")
        self.path = path
        self.line = line


class CsvOutputError(BiduiError):
    """The output CSV could not be written."""

    user_error = True


@runtime_checkable
class _HasStatus(Protocol):
    """The ``grpc.Call`` side of a raised ``grpc.RpcError``."""

    def code(self) -> grpc.StatusCode: ...

    def details(self) -> str | None: ...


_BY_CODE: dict[grpc.StatusCode, type[BiduiError]] = {
    grpc.StatusCode.UNAUTHENTICATED: AuthenticationError,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDeniedError,
    grpc.StatusCode.NOT_FOUND: ResourceNotFoundError,
    grpc.StatusCode.INVALID_ARGUMENT: InvalidRequestError,
    grpc.StatusCode.OUT_OF_RANGE: InvalidRequestError,
    grpc.StatusCode.FAILED_PRECONDITION: InvalidRequestError,
    grpc.StatusCode.RESOURCE_EXHAUSTED: QuotaExceededError,
    grpc.StatusCode.UNAVAILABLE: ServiceUnavailableError,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceededError,
}


# Where the status alone does not tell whose problem it is, the node's words do: it puts its
# reason label (PROTOCOL.md section 11) nowhere else on the wire.
_BY_DETAILS: tuple[tuple[grpc.StatusCode, str, type[BiduiError]], ...] = (
    # calendar_range: the decision deadline falls past the node's working-day calendar. Only the
    # node's operator can fix that (by updating the calendar), so it is not the caller's error.
    (grpc.StatusCode.FAILED_PRECONDITION, "working-day calendar", ServiceError),
)


def is_tls_failure(code: grpc.StatusCode, details: str | None) -> bool:
    """True when a status says a certificate was refused: the node's by this client (wrong CA,
    wrong name) or this client's by the node with a TLS alert.

    Retrying such a failure cannot help, and it is the caller's configuration to fix. A
    connection closed while connecting is not counted: it may be a node going away
    (``client_sdk.connection.refusals`` tells the two apart).
    """
    return classify(code, details) in (
        ConnectionFailure.NODE_CERTIFICATE_REFUSED,
        ConnectionFailure.CLIENT_CERTIFICATE_REFUSED,
    )


def error_from_status(
    code: grpc.StatusCode, details: str | None, *, context: str | None = None
) -> BiduiError:
    """The one mapping from a gRPC status to an SDK exception.

    ``context`` names what was being done ("DescribeResource residents") and prefixes the message.
    """
    text = (details or "").strip() or code.name.lower().replace("_", " ")
    if is_tls_failure(code, details):
        cls: type[BiduiError] = AuthenticationError
        text = f"{likely_cause(classify(code, details), details)} (grpc: {text})"
    else:
        cls = _BY_CODE.get(code, ServiceError)
        lowered = text.lower()
        for status, words, by_words in _BY_DETAILS:
            if code is status and words in lowered:
                cls = by_words
    if context:
        text = f"{context}: {text}"
    return cls(text, code=code)


def error_from_rpc(error: grpc.RpcError, *, context: str | None = None) -> BiduiError:
    """Map a failed gRPC call (the ``grpc.RpcError`` it raised) to an SDK exception."""
    code, details = rpc_status(error)
    return error_from_status(code, details, context=context)


def with_note(error: BiduiError, note: str) -> BiduiError:
    """``error`` with `` (note)`` appended to its message."""
    error.message = f"{error.message} ({note})"
    error.args = (error.message,)
    return error


def rpc_status(error: grpc.RpcError) -> tuple[grpc.StatusCode, str | None]:
    """The status code and details of a failed call (UNKNOWN when the error carries none)."""
    if isinstance(error, _HasStatus):
        return error.code(), error.details()
    return grpc.StatusCode.UNKNOWN, None
