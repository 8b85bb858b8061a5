"""A stand-in for a generated stub, and the client's calls on a fake clock, for tests of the SDK's
calls without a node (``SharingCalls``, ``DiscrepancyCalls``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc

from client_sdk.connection.retry import NodeCalls, RetryPolicy
from tests.client_sdk.failed_call import FailedCall


class StandInStub:
    """The methods named in ``answers``: each fails with the next of ``failures`` while any are
    left, then answers; every request is kept in ``requests``, in order."""

    def __init__(self, answers: dict[str, Any], failures: list[tuple[grpc.StatusCode, str]]):
        self.failures = list(failures)
        self.requests: list[Any] = []
        for name, answer in answers.items():
            setattr(self, name, self._answer(answer))

    def _answer(self, answer: Any) -> Callable[..., Any]:
        def method(request: Any, timeout: float) -> Any:
            self.requests.append(request)
            if self.failures:
                raise FailedCall(*self.failures.pop(0))
            return answer

        return method


def fake_calls() -> NodeCalls:
    """10 s per request and 3 retries, on a clock that only the retries' pauses move."""
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    return NodeCalls(10.0, RetryPolicy(retries=3), clock=lambda: now[0], sleep=sleep)
