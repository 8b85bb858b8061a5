"""Calling the node: one deadline per request; a node that is away or busy is waited for, with
exponential backoff and jitter, and a refused certificate is reported at once.

Every RPC the client makes goes through :class:`NodeCalls`: it turns a ``grpc.RpcError`` into an
:class:`RpcFailure` (status, details, which call), and :func:`call_with_retries` decides whether to
try again::

    the node answered (PERMISSION_DENIED, INVALID_ARGUMENT...)   -> raised at once
    a certificate was refused (ours or the node's)                -> AuthenticationError at once
    closed while connecting                                       -> a probe decides (refusals.py)
    the node is stopping, restarting, unreachable (UNAVAILABLE,
      CANCELLED by a server shutdown), or the attempt asks to be
      started again (a blinded session lost with its node)       -> retried within the deadline
    the node is busy (RESOURCE_EXHAUSTED too_many_sessions: the
      department's open blinded sessions at their cap; or the
      node's RPCs at theirs)                                     -> retried within the deadline
    a quota is used up (RESOURCE_EXHAUSTED quota_exceeded)       -> QuotaExceededError at once,
                                                                    with the node's message

So a rolling restart of a node costs the requester time, not a failed comparison. An RPC that
makes a record at the node (Apply, File) is retried only while it cannot have reached it
(``NodeCalls.recording``): sending it twice could record it twice. An *attempt* may be several
RPCs (blinded mode: BlindEvaluate then MatchBlinded); it is retried as a whole, so a blinded retry
blinds afresh.

Time and randomness are parameters (``clock``, ``sleep``, ``rng``) so tests run on a fake clock.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc

from client_sdk.connection.refusals import Refusals
from client_sdk.connection_failures import ConnectionFailure, classify
from client_sdk.errors import (
    BiduiError,
    DeadlineExceededError,
    error_from_status,
    rpc_status,
    with_note,
)

__all__ = ["NodeCalls", "RetryPolicy", "RpcFailure", "call_with_retries", "node_busy"]

_T = TypeVar("_T")

# RESOURCE_EXHAUSTED that passes within seconds, told apart by the node's words (its reason label
# is not on the wire): its blinded sessions at their cap, the department's or all departments'
# (too_many_sessions: sessions finish or expire), and grpc's own cap on the RPCs a node runs at
# once. A used-up quota (quota_exceeded) frees only when its minute or day ends, which its
# message states: waiting for it is the caller's decision, so it is raised at once.
_BUSY = (
    "blinded comparisons open",  # "your department has 16 blinded comparisons open on this node"
    "blinded comparisons are open",  # "too many blinded comparisons are open on this node"
    "concurrent rpc limit exceeded",  # grpc.server(maximum_concurrent_rpcs=...)
)


def node_busy(code: grpc.StatusCode, details: str | None) -> bool:
    """True when the node refused for lack of room that will soon be free: retry after a pause."""
    text = (details or "").lower()
    return code is grpc.StatusCode.RESOURCE_EXHAUSTED and any(words in text for words in _BUSY)


@dataclass(frozen=True)
class RetryPolicy:
    """How a node that is away or busy is waited for: ``retries`` more attempts, backoff growing by
    ``multiplier`` from ``initial_backoff`` up to ``max_backoff`` seconds, each pause scaled by a
    random factor in [0.5, 1] so that many clients do not retry in step. The request's deadline
    bounds it all; the defaults wait up to about 15 to 30 seconds, what a node takes to restart
    with its indexes."""

    retries: int = 10
    initial_backoff: float = 0.2
    max_backoff: float = 5.0
    multiplier: float = 2.0

    def __post_init__(self) -> None:
        if self.retries < 0:
            raise ValueError("retries must be >= 0")
        if self.initial_backoff < 0 or self.max_backoff < 0 or self.multiplier < 1:
            raise ValueError("backoffs must be >= 0 and the multiplier >= 1")

    def backoff(self, retry: int) -> float:
        """The pause before retry number ``retry`` (0-based), before jitter."""
        return float(min(self.max_backoff, self.initial_backoff * self.multiplier**retry))


class RpcFailure(Exception):
    """A failed RPC inside an attempt: its status, and which call it was.

    ``restartable`` marks a failure that starting the whole attempt again can cure whatever its
    status (a blinded comparison's session lost with a restarted node).
    """

    def __init__(
        self,
        code: grpc.StatusCode,
        details: str | None,
        context: str,
        *,
        restartable: bool = False,
    ) -> None:
        super().__init__(f"{context}: {code.name}")
        self.code = code
        self.details = details
        self.context = context
        self.restartable = restartable


def call_with_retries(
    attempt: Callable[[float], _T],
    *,
    deadline: float,
    policy: RetryPolicy,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    rng: random.Random | None = None,
    refusals: Refusals | None = None,
) -> _T:
    """Run ``attempt(deadline)`` until it succeeds, retrying what a retry can cure (see the
    module docstring); ``refusals`` explains refused connections (default: no probe).

    Anything else, and a retryable failure once the retries or the time before ``deadline`` (on
    ``clock``) are used up, is raised as the mapped :class:`BiduiError`.
    """
    jitter = rng or random.Random()
    explain = refusals or Refusals("")
    retry = 0
    while True:
        if clock() >= deadline:
            raise DeadlineExceededError("no answer from the node before the deadline")
        try:
            return attempt(deadline)
        except RpcFailure as failure:
            kind = classify(failure.code, failure.details)
            if not failure.restartable and not node_busy(failure.code, failure.details):
                if kind is ConnectionFailure.ANSWERED:
                    raise _mapped(failure) from failure
                if kind is not ConnectionFailure.TRANSIENT:
                    refusal = explain.refusal(failure, deadline)
                    if refusal is not None:
                        raise refusal from failure
            pause = policy.backoff(retry) * jitter.uniform(0.5, 1.0)
            if retry >= policy.retries or clock() + pause >= deadline:
                error = _mapped(failure, attempts=retry + 1)
                if kind is ConnectionFailure.CLOSED_WHILE_CONNECTING and not explain.can_probe:
                    error = with_note(error, _CLOSED_NOTE)
                raise error from failure
            sleep(pause)
            retry += 1


_CLOSED_NOTE = (
    "the node accepted the connection and closed it while connecting: if this persists, it "
    "refuses the client certificate (give client_sdk.Credentials to have the SDK find out)"
)


def _mapped(failure: RpcFailure, *, attempts: int = 1) -> BiduiError:
    error = error_from_status(failure.code, failure.details, context=failure.context)
    return with_note(error, f"after {attempts} attempts") if attempts > 1 else error


class NodeCalls:
    """The RPCs of one client: each request gets ``timeout`` seconds, retries included."""

    def __init__(
        self,
        timeout: float,
        policy: RetryPolicy,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
        refusals: Refusals | None = None,
    ) -> None:
        self.timeout = timeout
        self.policy = policy
        self.clock = clock
        self.sleep = sleep
        self.rng = rng
        self.refusals = refusals

    def retrying(self, attempt: Callable[[float], _T]) -> _T:
        """Run ``attempt(deadline)`` with retries, the deadline ``timeout`` seconds from now."""
        return call_with_retries(
            attempt,
            deadline=self.clock() + self.timeout,
            policy=self.policy,
            clock=self.clock,
            sleep=self.sleep,
            rng=self.rng,
            refusals=self.refusals,
        )

    def call(self, context: str, method: Callable[..., _T], request: Any, deadline: float) -> _T:
        """One RPC within what is left before ``deadline``; a failure becomes :class:`RpcFailure`.

        ``context`` names the call ("DescribeResource 'residents'") in any error raised.
        """
        remaining = deadline - self.clock()
        if remaining <= 0:
            raise DeadlineExceededError(f"{context}: no answer from the node before the deadline")
        try:
            return method(request, timeout=remaining)
        except grpc.RpcError as exc:
            code, details = rpc_status(exc)
            raise RpcFailure(code, details, context) from None

    def unary(self, context: str, method: Callable[..., _T], request: Any) -> _T:
        """One RPC, retried as a whole: :meth:`call` inside :meth:`retrying`."""
        return self.retrying(lambda deadline: self.call(context, method, request, deadline))

    def recording(self, context: str, method: Callable[..., _T], request: Any, *, note: str) -> _T:
        """One RPC that makes a record at the node (an application, a report): retried only while
        it cannot have reached the node. A failure after it may have arrived is raised with
        ``note`` appended: that the record may exist, and where to look before sending again."""

        def attempt(deadline: float) -> _T:
            try:
                return self.call(context, method, request, deadline)
            except RpcFailure as failure:
                if not _may_have_arrived(failure):
                    raise
                error = error_from_status(failure.code, failure.details, context=context)
                raise with_note(error, note) from None

        return self.retrying(attempt)


def _may_have_arrived(failure: RpcFailure) -> bool:
    """Whether a failed call may have reached the node (so that sending it again may record it
    twice). Only a connection that was never made ("failed to connect ...") says it did not; a
    node that answered with a refusal recorded nothing."""
    if failure.code is grpc.StatusCode.DEADLINE_EXCEEDED:
        return True
    if classify(failure.code, failure.details) is not ConnectionFailure.TRANSIENT:
        return False
    return "failed to connect" not in (failure.details or "").lower()
