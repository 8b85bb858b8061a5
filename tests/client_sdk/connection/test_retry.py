"""Retries with backoff and jitter on a fake clock: what is retried, for how long, and what is
raised in the end."""

from __future__ import annotations

import random
from collections.abc import Callable

import grpc
import pytest

from client_sdk.connection.refusals import Refusals
from client_sdk.connection.retry import RetryPolicy, RpcFailure, call_with_retries
from client_sdk.errors import (
    AuthenticationError,
    BiduiError,
    DeadlineExceededError,
    InvalidRequestError,
    PermissionDeniedError,
    ServiceError,
    ServiceUnavailableError,
)
from tests.client_sdk import observed


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
    failures: list[grpc.StatusCode | RpcFailure], time: _FakeTime, cost: float = 0.0
) -> tuple[Callable[[float], str], list[float]]:
    """An attempt that fails with ``failures`` in turn (a bare code: "node restarting"), then
    answers."""
    calls: list[float] = []

    def attempt(deadline: float) -> str:
        calls.append(deadline)
        time.now += cost
        if len(calls) <= len(failures):
            failure = failures[len(calls) - 1]
            if isinstance(failure, RpcFailure):
                raise failure
            raise RpcFailure(failure, "node restarting", "CompareHashed")
        return "answer"

    return attempt, calls


def _run(attempt: Callable[[float], str], time: _FakeTime, **options: object) -> str:
    return call_with_retries(
        attempt,
        deadline=200.0,
        policy=RetryPolicy(),
        clock=time.clock,
        sleep=time.sleep,
        **options,  # type: ignore[arg-type]
    )


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
        _run(attempt, time)
    assert len(calls) == 1
    assert time.sleeps == []


@pytest.mark.parametrize(
    "details",
    [
        observed.WRONG_SERVER_CA,
        observed.WRONG_SERVER_NAME,
        observed.TLS12_UNKNOWN_CA,
        observed.TLS12_NO_CERTIFICATE,
    ],
)
def test_a_refused_certificate_is_not_retried(details: str) -> None:
    time = _FakeTime()
    failure = RpcFailure(grpc.StatusCode.UNAVAILABLE, details, "DescribeResource")
    attempt, calls = _failing([failure], time)
    with pytest.raises(AuthenticationError, match=r"^DescribeResource: .* \(grpc: failed to"):
        _run(attempt, time)
    assert len(calls) == 1
    assert time.sleeps == []


@pytest.mark.parametrize(
    "details",
    [
        observed.CONNECTION_REFUSED,
        observed.STREAM_REMOVED,
        observed.CANCELLING_ALL_CALLS,
        observed.PROXY_WITHOUT_NODE,
    ],
)
def test_a_node_that_is_away_is_waited_for(details: str) -> None:
    time = _FakeTime()
    failure = RpcFailure(grpc.StatusCode.UNAVAILABLE, details, "CompareHashed")
    attempt, calls = _failing([failure] * 3, time)
    assert _run(attempt, time) == "answer"
    assert len(calls) == 4


def test_cancelled_by_a_server_shutdown_is_retried_but_not_our_own_cancel() -> None:
    time = _FakeTime()
    shutdown = RpcFailure(grpc.StatusCode.CANCELLED, observed.CANCELLING_ALL_CALLS, "X")
    attempt, calls = _failing([shutdown], time)
    assert _run(attempt, time) == "answer"
    ours = RpcFailure(grpc.StatusCode.CANCELLED, "Channel closed!", "X")
    attempt, calls = _failing([ours], time)
    with pytest.raises(ServiceError):
        _run(attempt, time)
    assert len(calls) == 1


def test_a_restartable_failure_is_retried_whatever_its_status() -> None:
    time = _FakeTime()
    lost = RpcFailure(
        grpc.StatusCode.FAILED_PRECONDITION, "no open session", "MatchBlinded", restartable=True
    )
    attempt, calls = _failing([lost, lost], time)
    assert _run(attempt, time) == "answer"
    assert len(calls) == 3


def test_closed_while_connecting_without_a_probe_is_retried_then_says_what_it_may_be() -> None:
    time = _FakeTime()
    closed = RpcFailure(grpc.StatusCode.UNAVAILABLE, observed.CLOSED_WHILE_CONNECTING, "X")
    attempt, calls = _failing([closed] * 5, time)
    with pytest.raises(ServiceUnavailableError, match="if this persists, it refuses the client"):
        call_with_retries(
            attempt,
            deadline=200.0,
            policy=RetryPolicy(retries=2),
            clock=time.clock,
            sleep=time.sleep,
        )
    assert len(calls) == 3


class _Refusals(Refusals):
    """Refusals whose probe always finds the certificate refused."""

    def __init__(self) -> None:
        super().__init__("node:1")
        self.asked: list[RpcFailure] = []

    def refusal(self, failure: RpcFailure, deadline: float) -> BiduiError | None:
        self.asked.append(failure)
        return AuthenticationError("refused")


def test_closed_while_connecting_asks_the_refusals() -> None:
    time = _FakeTime()
    refusals = _Refusals()
    closed = RpcFailure(grpc.StatusCode.UNAVAILABLE, observed.CLOSED_WHILE_CONNECTING, "X")
    attempt, calls = _failing([closed] * 5, time)
    with pytest.raises(AuthenticationError, match="refused"):
        _run(attempt, time, refusals=refusals)
    assert len(calls) == 1
    assert refusals.asked == [closed]
    # A node that is merely away is never put to the probe.
    attempt, calls = _failing([grpc.StatusCode.UNAVAILABLE], time)
    assert _run(attempt, time, refusals=refusals) == "answer"
    assert len(refusals.asked) == 1


def test_retry_policy_validation() -> None:
    with pytest.raises(ValueError):
        RetryPolicy(retries=-1)
    with pytest.raises(ValueError):
        RetryPolicy(multiplier=0.5)
    assert RetryPolicy(initial_backoff=1, max_backoff=3).backoff(5) == 3
