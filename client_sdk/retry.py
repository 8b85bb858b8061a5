"""Calling the node: one deadline per request, UNAVAILABLE retried with backoff and jitter.

Every RPC the client makes goes through :class:`NodeCalls`: it turns a ``grpc.RpcError`` into an
:class:`RpcFailure` (status, details, which call), and :func:`call_with_retries` decides whether to
try again. An *attempt* may be several RPCs (blinded mode: BlindEvaluate then MatchBlinded); it is
retried as a whole, so a blinded retry blinds afresh.

Time and randomness are parameters (``clock``, ``sleep``, ``rng``) so tests run on a fake clock.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc

from client_sdk.errors import (
    DeadlineExceededError,
    error_from_status,
    is_tls_failure,
    rpc_status,
)

__all__ = ["NodeCalls", "RetryPolicy", "RpcFailure", "call_with_retries"]

_T = TypeVar("_T")


@dataclass(frozen=True)
class RetryPolicy:
    """How UNAVAILABLE is retried: ``retries`` more attempts, backoff growing by ``multiplier``
    from ``initial_backoff`` up to ``max_backoff`` seconds, each pause scaled by a random factor in
    [0.5, 1] so that many clients do not retry in step."""

    retries: int = 4
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
    """A failed RPC inside an attempt: its status, and which call it was."""

    def __init__(self, code: grpc.StatusCode, details: str | None, context: str) -> None:
        super().__init__(f"{context}: {code.name}")
        self.code = code
        self.details = details
        self.context = context


def call_with_retries(
    attempt: Callable[[float], _T],
    *,
    deadline: float,
    policy: RetryPolicy,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    rng: random.Random | None = None,
) -> _T:
    """Run ``attempt(deadline)`` until it succeeds, retrying :class:`RpcFailure` UNAVAILABLE.

    Other failures, TLS handshake failures, and UNAVAILABLE once the retries or the time before
    ``deadline`` (on ``clock``) are used up, are raised as the mapped :class:`BiduiError`.
    """
    jitter = rng or random.Random()
    retry = 0
    while True:
        if clock() >= deadline:
            raise DeadlineExceededError("no answer from the node before the deadline")
        try:
            return attempt(deadline)
        except RpcFailure as failure:
            retryable = failure.code is grpc.StatusCode.UNAVAILABLE and not is_tls_failure(
                failure.code, failure.details
            )
            pause = policy.backoff(retry) * jitter.uniform(0.5, 1.0)
            if not retryable or retry >= policy.retries or clock() + pause >= deadline:
                error = error_from_status(failure.code, failure.details, context=failure.context)
                if retryable and retry:
                    error.message = f"{error.message} (after {retry + 1} attempts)"
                    error.args = (error.message,)
                raise error from failure
            sleep(pause)
            retry += 1


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
    ) -> None:
        self.timeout = timeout
        self.policy = policy
        self.clock = clock
        self.sleep = sleep
        self.rng = rng

    def retrying(self, attempt: Callable[[float], _T]) -> _T:
        """Run ``attempt(deadline)`` with retries, the deadline ``timeout`` seconds from now."""
        return call_with_retries(
            attempt,
            deadline=self.clock() + self.timeout,
            policy=self.policy,
            clock=self.clock,
            sleep=self.sleep,
            rng=self.rng,
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
