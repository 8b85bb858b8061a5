"""Retries with backoff and jitter on a fake clock: what is retried, for how long, and what is
raised in the end."""

from __future__ import annotations

import random
from collections.abc import Callable

import grpc
import pytest

from client_sdk.errors import (
    AuthenticationError,
    DeadlineExceededError,
    InvalidRequestError,
    PermissionDeniedError,
    ServiceError,
    ServiceUnavailableError,
)
from client_sdk.retry import RetryPolicy, RpcFailure, call_with_retries


class _FakeTime:
    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def _failing(
    codes: list[grpc.StatusCode], time: _FakeTime, cost: float = 0.0
) -> tuple[Callable[[float], str], list[float]]:
    calls: list[float] = []

    def attempt(deadline: float) -> str:
        calls.append(deadline)
        time.now += cost
        if len(calls) <= len(codes):
            raise RpcFailure(codes[len(calls) - 1], "node restarting", "CompareHashed")
        return "answer"

    return attempt, calls


def test_unavailable_is_retried_with_growing_backoff() -> None:
    time = _FakeTime()
    attempt, calls = _failing([grpc.StatusCode.UNAVAILABLE] * 3, time)
    policy = RetryPolicy(retries=4, initial_backoff=0.2, max_backoff=0.5, multiplier=2.0)
    result = call_with_retries(
        attempt,
        deadline=160.0,
        policy=policy,
        clock=time.clock,
        sleep=time.sleep,
        rng=random.Random(1),
    )
    assert result == "answer"
    assert len(calls) == 4
    assert calls == [160.0] * 4  # every attempt shares the one deadline
    # backoff 0.2, 0.4, 0.5 (capped), each scaled by a jitter factor in [0.5, 1]
    for pause, base in zip(time.sleeps, [0.2, 0.4, 0.5], strict=True):
        assert base * 0.5 <= pause <= base


def test_retries_give_up_with_service_unavailable() -> None:
    time = _FakeTime()
    attempt, calls = _failing([grpc.StatusCode.UNAVAILABLE] * 10, time)
    with pytest.raises(ServiceUnavailableError, match="after 3 attempts") as caught:
        call_with_retries(
            attempt,
            deadline=1000.0,
            policy=RetryPolicy(retries=2),
            clock=time.clock,
            sleep=time.sleep,
        )
    assert len(calls) == 3
    assert "CompareHashed: node restarting" in str(caught.value)


def test_retries_stop_at_the_deadline() -> None:
    time = _FakeTime()
    attempt, calls = _failing([grpc.StatusCode.UNAVAILABLE] * 10, time, cost=1.0)
    with pytest.raises(ServiceUnavailableError):
        call_with_retries(
            attempt,
            deadline=103.0,
            policy=RetryPolicy(retries=100, initial_backoff=0.5, max_backoff=0.5),
            clock=time.clock,
            sleep=time.sleep,
        )
    assert time.now <= 103.0 + 1.0
    assert 1 < len(calls) < 5


def test_deadline_already_passed() -> None:
    time = _FakeTime()
    attempt, calls = _failing([], time)
    with pytest.raises(DeadlineExceededError):
        call_with_retries(
            attempt, deadline=99.0, policy=RetryPolicy(), clock=time.clock, sleep=time.sleep
        )
    assert calls == []


@pytest.mark.parametrize(
    ("code", "cls"),
    [
        (grpc.StatusCode.PERMISSION_DENIED, PermissionDeniedError),
        (grpc.StatusCode.INVALID_ARGUMENT, InvalidRequestError),
        (grpc.StatusCode.DEADLINE_EXCEEDED, DeadlineExceededError),
        (grpc.StatusCode.INTERNAL, ServiceError),
    ],
)
def test_other_failures_are_not_retried(code: grpc.StatusCode, cls: type[Exception]) -> None:
    time = _FakeTime()
    attempt, calls = _failing([code], time)
    with pytest.raises(cls):
        call_with_retries(
            attempt, deadline=200.0, policy=RetryPolicy(), clock=time.clock, sleep=time.sleep
        )
    assert len(calls) == 1
    assert time.sleeps == []


def test_tls_handshake_failure_is_not_retried() -> None:
    time = _FakeTime()
    calls: list[float] = []

    def attempt(deadline: float) -> None:
        calls.append(deadline)
        raise RpcFailure(
            grpc.StatusCode.UNAVAILABLE,
            "failed to connect to all addresses; last error: Tls handshake failed",
            "DescribeResource",
        )

    with pytest.raises(AuthenticationError):
        call_with_retries(
            attempt, deadline=200.0, policy=RetryPolicy(), clock=time.clock, sleep=time.sleep
        )
    assert len(calls) == 1


def test_retry_policy_validation() -> None:
    with pytest.raises(ValueError):
        RetryPolicy(retries=-1)
    with pytest.raises(ValueError):
        RetryPolicy(multiplier=0.5)
    assert RetryPolicy(initial_backoff=1, max_backoff=3).backoff(5) == 3
