"""The node's refusals as the SDK sees them: which exception, retried or not, with what words.

The node puts its reason label (too_many_sessions, quota_exceeded, calendar_range...) nowhere on
the wire but in its words, so the SDK reads some of them. Each refusal here is made by the
node's own code (``provider_node``: the status from its error class, the message from the code
path that raises it), so that a change of wording or status there fails here first.
"""

from __future__ import annotations

import datetime as dt
import time

import grpc
import pytest
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from client_sdk.connection.retry import RetryPolicy, RpcFailure, call_with_retries, node_busy
from client_sdk.errors import (
    BiduiError,
    InvalidRequestError,
    QuotaExceededError,
    ResourceNotFoundError,
    ServiceError,
)
from provider_node.access import quotas
from provider_node.comparison.sessions import SessionTable
from provider_node.core import errors, workdays
from provider_node.store import models
from provider_node.transport.status import status_code

NOW = dt.datetime(2026, 3, 2, 1, 0, tzinfo=dt.UTC)


def _sessions_full(*, department_share: bool) -> errors.NodeError:
    """The node's refusal when the department's (or all departments') sessions are at the cap."""
    table = SessionTable(
        lifetime=300,
        max_open=1 if department_share else 0,
        max_open_per_department=0 if department_share else 1,
        monotonic=time.monotonic,
    )
    with pytest.raises(errors.TooManySessionsError) as refused:
        table.check_room("luzhou-civil-affairs")
    return refused.value


def _quota_used_up() -> errors.NodeError:
    """The node's refusal of 4 items when 2 of a grant's 5 a day remain."""
    engine = create_engine("sqlite://")
    models.Base.metadata.create_all(engine)
    with Session(engine) as session, pytest.raises(errors.QuotaExceededError) as refused:
        quotas.consume_grant_day(session, "grant-1", 5, 3, NOW)
        quotas.consume_grant_day(session, "grant-1", 5, 4, NOW)
    return refused.value


def _calendar_ends() -> errors.NodeError:
    last = workdays.supported_years()[1]
    with pytest.raises(errors.CalendarRangeError) as refused:
        workdays.is_working_day(dt.date(last + 1, 1, 4))
    return refused.value


def _failure(error: errors.NodeError, context: str = "BlindEvaluate") -> RpcFailure:
    return RpcFailure(status_code(error), str(error), context)


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def _run(failures: list[RpcFailure], deadline: float = 60.0) -> tuple[str, int, _Clock]:
    clock, attempts = _Clock(), []

    def attempt(_deadline: float) -> str:
        attempts.append(1)
        if len(attempts) <= len(failures):
            raise failures[len(attempts) - 1]
        return "answer"

    result = call_with_retries(
        attempt, deadline=deadline, policy=RetryPolicy(), clock=lambda: clock.now, sleep=clock.sleep
    )
    return result, len(attempts), clock


@pytest.mark.parametrize("department_share", [True, False])
def test_open_sessions_at_their_cap_are_waited_for(department_share: bool) -> None:
    busy = _failure(_sessions_full(department_share=department_share))
    assert busy.code is grpc.StatusCode.RESOURCE_EXHAUSTED
    result, attempts, clock = _run([busy, busy, busy])
    assert (result, attempts) == ("answer", 4)
    assert len(clock.sleeps) == 3 and clock.sleeps[0] <= clock.sleeps[2]  # backing off


def test_sessions_that_stay_full_end_in_a_quota_error_at_the_deadline() -> None:
    busy = _failure(_sessions_full(department_share=True))
    with pytest.raises(QuotaExceededError, match="blinded comparisons open") as caught:
        _run([busy] * 100, deadline=3.0)
    assert "attempts)" in caught.value.message


def test_grpc_s_own_cap_on_running_rpcs_is_waited_for() -> None:
    # grpc.server(maximum_concurrent_rpcs=...) answers this itself, before the node's code runs.
    busy = RpcFailure(
        grpc.StatusCode.RESOURCE_EXHAUSTED, "Concurrent RPC limit exceeded!", "CompareHashed"
    )
    assert _run([busy])[:2] == ("answer", 2)


def test_a_used_up_quota_is_raised_at_once_with_the_node_s_words() -> None:
    refusal = _failure(_quota_used_up(), "CompareHashed")
    assert not node_busy(refusal.code, refusal.details)
    with pytest.raises(QuotaExceededError) as caught:
        _run([refusal])
    message = caught.value.message
    assert message.startswith("CompareHashed: grant grant-1 may compare 5 items per day")
    assert "2 remain" in message and "resets at 2026-03-03T00:00:00+08:00" in message
    assert caught.value.user_error


@pytest.mark.parametrize(
    ("error", "cls", "user_error"),
    [
        # Apply for a resource shared unconditionally: compare without applying.
        (
            errors.StateConflictError("'residents' is shared unconditionally"),
            InvalidRequestError,
            True,
        ),
        # The decision deadline falls past the node's calendar: its operator must update it.
        (_calendar_ends(), ServiceError, False),
        # GetApplication of an id that is none of the caller's; compare naming no grant of theirs.
        (errors.UnknownRecordError("no application 'x'"), ResourceNotFoundError, True),
        (errors.UnknownRecordError("no grant 'x'"), ResourceNotFoundError, True),
    ],
)
def test_sharing_refusals_map_to_a_class_that_says_whose_to_fix(
    error: errors.NodeError, cls: type[BiduiError], user_error: bool
) -> None:
    with pytest.raises(cls) as caught:
        _run([_failure(error, "Apply 'household_register'")])
    assert caught.value.message == f"Apply 'household_register': {error}"
    assert caught.value.user_error is user_error
