"""Why the node refuses or fails a request, in the node's own terms.

These exceptions carry no gRPC types: each names the gRPC status it is answered with (``status``,
which ``provider_node.transport.status``, the one place that touches gRPC's codes, turns into a
code) and
the bounded ``reason`` label the refusal is counted under in the metrics. Messages are written for
the requesting department's engineer and never contain a queried value, a tag or a key.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from provider_node.core.vocabulary import Outcome


def quote(text: str) -> str:
    """Echo a requester-supplied name safely: bounded and printable."""
    return repr(text[:64])


class NodeError(Exception):
    """Base class: a request the node will not answer with a result."""

    #: Bounded label for ``bidui_refusals_total{reason}`` and the audit record's outcome reason.
    reason = "internal"
    #: The gRPC status name answered for it (``provider_node.transport.status`` turns it into the
    #: code).
    status = "INTERNAL"
    #: ``refused`` for the requester's mistakes and policy; ``failed`` for the node's own faults.
    outcome: Outcome = Outcome.REFUSED


class UnauthenticatedError(NodeError):
    """The caller presented no usable department identity."""

    reason = "unauthenticated"
    status = "UNAUTHENTICATED"

    def __init__(self, message: str, *, cert_fingerprint: str = "", cert_serial: str = "") -> None:
        super().__init__(message)
        #: SHA-256 and serial (hex) of the presented certificate, if any, for the audit record.
        self.cert_fingerprint = cert_fingerprint
        self.cert_serial = cert_serial


class UnknownResourceError(NodeError):
    """No resource (or comparison key, or open comparison) of that name on this node."""

    reason = "unknown_resource"
    status = "NOT_FOUND"


class NotSharedError(NodeError):
    """Article 24: the resource is catalogued as not shared and is never compared."""

    reason = "not_shared"
    status = "PERMISSION_DENIED"


class NotGrantedError(NodeError):
    """The caller has no grant for this resource (conditional sharing)."""

    reason = "not_granted"
    status = "PERMISSION_DENIED"


class InvalidRequestError(NodeError):
    """Malformed input: wrong lengths, invalid group elements, missing purpose, bad ids."""

    reason = "invalid_argument"
    status = "INVALID_ARGUMENT"


class BatchTooLargeError(InvalidRequestError):
    """More items in one request than the node's ``max_batch_items``."""

    reason = "batch_too_large"
    status = "INVALID_ARGUMENT"


class KeyVersionMismatchError(NodeError):
    """The requester used a key version other than the resource's current one."""

    reason = "key_version_mismatch"
    status = "FAILED_PRECONDITION"


class ModeNotOfferedError(NodeError):
    """The resource does not offer the requested comparison mode."""

    reason = "mode_not_offered"
    status = "FAILED_PRECONDITION"


class AnswerNotOfferedError(NodeError):
    """The resource does not offer this answer (match bits, verification, count) to anyone."""

    reason = "answer_not_offered"
    status = "PERMISSION_DENIED"


class FieldNotVerifiableError(NodeError):
    """A field named for verification is not verifiable against the comparison key."""

    reason = "field_not_verifiable"
    status = "FAILED_PRECONDITION"


class SessionExpiredError(NodeError):
    """A blinded comparison's second step came after its session lifetime, or never opened."""

    reason = "session_expired"
    status = "FAILED_PRECONDITION"


class TooManySessionsError(NodeError):
    """Too many blinded comparisons are open at once; the requester should retry shortly."""

    reason = "too_many_sessions"
    status = "RESOURCE_EXHAUSTED"


class RateLimitedError(NodeError):
    """The requesting department compared more items per minute than the node allows."""

    reason = "rate_limited"
    status = "RESOURCE_EXHAUSTED"


class AuditUnavailableError(NodeError):
    """The audit record could not be committed, so no answer may leave the node (fail closed)."""

    reason = "audit_unavailable"
    status = "UNAVAILABLE"
    outcome = Outcome.FAILED


# ---- conditional sharing, quotas and the working-day calendar (issue 7) -------------------------


class CalendarRangeError(NodeError):
    """A date outside the years the working-day calendar knows: no deadline is guessed.

    The node's own fault (neither its ``chinese-calendar`` package nor its ``[[calendar.years]]``
    know the year yet), so ``failed``.
    """

    reason = "calendar_range"
    status = "FAILED_PRECONDITION"
    outcome = Outcome.FAILED


class UnknownRecordError(NodeError):
    """No application, grant or certificate with that id on this node."""

    reason = "unknown_record"
    status = "NOT_FOUND"


class StateConflictError(NodeError):
    """The action does not fit the record's state: an application already decided, a grant or a
    certificate already revoked."""

    reason = "state_conflict"
    status = "FAILED_PRECONDITION"


class ReportTooLateError(NodeError):
    """Article 26: a doubted result is reported within 3 working days of its comparison; this
    report came later."""

    reason = "report_too_late"
    status = "FAILED_PRECONDITION"


class ApprovalTooWideError(InvalidRequestError):
    """An approval may only narrow an application (article 25): fewer keys or modes, fewer items
    per day, a shorter validity; never more than was applied for."""

    reason = "approval_too_wide"
    status = "INVALID_ARGUMENT"


class GrantRefusalReason(StrEnum):
    """Why no grant covers a comparison; each value is also the refusal's bounded metrics label."""

    NO_GRANT = "not_granted"
    KEY_NOT_GRANTED = "key_not_granted"
    MODE_NOT_GRANTED = "mode_not_granted"
    ANSWER_NOT_GRANTED = "answer_not_granted"
    NOT_YET_VALID = "grant_not_yet_valid"
    EXPIRED = "grant_expired"
    REVOKED = "grant_revoked"


class GrantRefusal(NotGrantedError):
    """No grant covers this department, resource, comparison key and mode today.

    ``why`` says which check failed; ``grant_id`` names the grant the message speaks of (the most
    recent one that would otherwise have covered the comparison), or is "" when there is none.
    """

    def __init__(self, message: str, *, why: GrantRefusalReason, grant_id: str = "") -> None:
        super().__init__(message)
        self.why = why
        self.reason = why.value
        self.grant_id = grant_id


class QuotaExceededError(NodeError):
    """The request does not fit in what is left of a quota window; nothing of it was counted.

    ``remaining`` items are left until ``resets_at`` (an aware UTC datetime), out of ``limit``;
    ``requested`` is what the refused request asked for.
    """

    reason = "quota_exceeded"
    status = "RESOURCE_EXHAUSTED"

    def __init__(
        self, message: str, *, limit: int, remaining: int, requested: int, resets_at: datetime
    ) -> None:
        super().__init__(message)
        self.limit = limit
        self.remaining = remaining
        self.requested = requested
        self.resets_at = resets_at
