"""Durable quotas on SQLite and PostgreSQL: windows, all-or-nothing counting, pruning, and threads
and processes hammering one window without ever passing its limit."""

from __future__ import annotations

import multiprocessing
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from provider_node.access.quotas import (
    Allowance,
    QuotaExceededError,
    QuotaKind,
    consume,
    consume_department_minute,
    consume_grant_day,
    peek,
    prune,
    window_start,
)
from provider_node.store.engine import make_engine, session_factory
from provider_node.store.models import QuotaUsage
from provider_node.transport import status

GRANT = "7d5c4d1e-9c3b-4a52-8f9e-3f1f2b6a0c11"
DEPARTMENT = "luzhou-civil-affairs"
# 10:30 on Monday 2025-09-29 in China; its China day started at 2025-09-28T16:00Z.
NOW = datetime(2025, 9, 29, 2, 30, 15, 250_000, tzinfo=UTC)
CHINA_DAY = datetime(2025, 9, 28, 16, 0, tzinfo=UTC)
MINUTE = datetime(2025, 9, 29, 2, 30, tzinfo=UTC)


def test_windows_start_at_china_midnight_and_on_the_minute() -> None:
    assert window_start(QuotaKind.GRANT_DAY, NOW) == CHINA_DAY
    # 23:59 in China on the 29th is still the 29th; 00:00 on the 30th opens the next day.
    assert window_start(QuotaKind.GRANT_DAY, datetime(2025, 9, 29, 15, 59, tzinfo=UTC)) == (
        CHINA_DAY
    )
    assert window_start(QuotaKind.GRANT_DAY, datetime(2025, 9, 29, 16, 0, tzinfo=UTC)) == (
        CHINA_DAY + timedelta(days=1)
    )
    assert window_start(QuotaKind.DEPARTMENT_MINUTE, NOW) == MINUTE
    allowance = Allowance(QuotaKind.GRANT_DAY, GRANT, CHINA_DAY, 10, 12)
    assert allowance.remaining == 0  # a limit lowered below what was used leaves nothing, not -2
    assert allowance.resets_at == datetime(2025, 9, 29, 16, 0, tzinfo=UTC)


def test_items_add_up_across_transactions(sessions: sessionmaker[Session]) -> None:
    for expected in (3, 7, 10):
        with sessions.begin() as session:
            allowance = consume_grant_day(session, GRANT, 10, expected - _used(session), NOW)
        assert allowance == Allowance(QuotaKind.GRANT_DAY, GRANT, CHINA_DAY, 10, expected)
    with sessions() as session:
        assert peek(session, QuotaKind.GRANT_DAY, GRANT, 10, NOW).remaining == 0


def test_a_request_that_does_not_fit_is_refused_whole(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        consume_grant_day(session, GRANT, 10, 7, NOW)
    with pytest.raises(QuotaExceededError) as caught, sessions.begin() as session:
        consume_grant_day(session, GRANT, 10, 4, NOW)
    error = caught.value
    assert (error.limit, error.remaining, error.requested) == (10, 3, 4)
    assert error.resets_at == datetime(2025, 9, 29, 16, 0, tzinfo=UTC)
    message = str(error)
    assert "3 remain" in message and "4" in message and "none of it was counted" in message
    assert "2025-09-30T00:00:00+08:00" in message and "13 h 29 min" in message
    assert status.status_code(error).name == "RESOURCE_EXHAUSTED"
    assert error.reason == "quota_exceeded"
    with sessions.begin() as session:
        assert _used(session) == 7  # nothing of the refused request was counted
        assert consume_grant_day(session, GRANT, 10, 3, NOW).remaining == 0


def test_a_request_larger_than_the_limit_says_split(sessions: sessionmaker[Session]) -> None:
    with pytest.raises(QuotaExceededError) as caught, sessions.begin() as session:
        consume_department_minute(session, DEPARTMENT, 100, 101, NOW)
    assert "split the batch" in str(caught.value)
    assert "per minute" in str(caught.value) and "44.8 s" in str(caught.value)


def test_scopes_kinds_and_windows_are_independent(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        consume_grant_day(session, GRANT, 5, 5, NOW)
        consume_grant_day(session, "another-grant", 5, 5, NOW)
        consume_department_minute(session, GRANT, 5, 5, NOW)  # same scope text, other kind
        tomorrow = NOW + timedelta(days=1)
        assert consume_grant_day(session, GRANT, 5, 5, tomorrow).used == 5
        next_minute = NOW + timedelta(minutes=1)
        assert consume_department_minute(session, GRANT, 5, 1, next_minute).used == 1
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(QuotaUsage)) == 5


def test_a_rolled_back_transaction_counts_nothing(sessions: sessionmaker[Session]) -> None:
    with pytest.raises(RuntimeError), sessions.begin() as session:
        consume_grant_day(session, GRANT, 10, 9, NOW)
        raise RuntimeError("the comparison failed after the quota was taken")
    with sessions.begin() as session:
        assert consume_grant_day(session, GRANT, 10, 10, NOW).used == 10


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"items": 0}, "items"),
        ({"items": True}, "items"),
        ({"limit": 0}, "limit"),
        ({"scope": ""}, "scope"),
        ({"window_start": CHINA_DAY + timedelta(hours=1)}, "not the start"),
        ({"now": CHINA_DAY + timedelta(days=1)}, "outside"),
        ({"now": datetime(2025, 9, 29, 10, 30)}, "naive"),
    ],
)
def test_bad_arguments_are_refused(
    sessions: sessionmaker[Session], change: dict[str, Any], message: str
) -> None:
    arguments: dict[str, Any] = {
        "kind": QuotaKind.GRANT_DAY,
        "scope": GRANT,
        "window_start": CHINA_DAY,
        "limit": 10,
        "items": 1,
        "now": NOW,
    }
    with sessions.begin() as session, pytest.raises(ValueError, match=message):
        consume(session, **{**arguments, **change})


def test_prune_deletes_only_windows_that_have_ended(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        consume_grant_day(session, GRANT, 10, 1, NOW - timedelta(days=1))
        consume_grant_day(session, GRANT, 10, 1, NOW)
        consume_department_minute(session, DEPARTMENT, 10, 1, NOW - timedelta(minutes=1))
        consume_department_minute(session, DEPARTMENT, 10, 1, NOW)
    with sessions.begin() as session:
        assert prune(session, NOW) == 2  # yesterday's day and the previous minute
    with sessions() as session:
        left = session.execute(select(QuotaUsage.kind, QuotaUsage.window_start)).all()
    assert sorted(left) == [
        ("department_minute", MINUTE),
        ("grant_day", CHINA_DAY),
    ]


# ---- concurrency: the limit holds with many writers -----------------------------------------

LIMIT = 1000
ITEMS = 7  # 142 requests fit (994 items); the 143rd would pass the limit


def _hammer(sessions: sessionmaker[Session], requests: int) -> int:
    """Send ``requests`` requests of ``ITEMS``; return how many were counted."""
    taken = 0
    for _ in range(requests):
        try:
            with sessions.begin() as session:
                consume_grant_day(session, GRANT, LIMIT, ITEMS, NOW)
            taken += 1
        except QuotaExceededError:
            pass
    return taken


def test_threads_never_pass_the_limit(sessions: sessionmaker[Session]) -> None:
    taken: list[int] = []
    failures: list[BaseException] = []

    def worker() -> None:
        try:
            taken.append(_hammer(sessions, 30))
        except BaseException as exc:  # surfaced by the assertion below
            failures.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(8)]  # 240 requests, 142 fit
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert sum(taken) == LIMIT // ITEMS
    with sessions() as session:
        assert _used(session) == sum(taken) * ITEMS <= LIMIT


def _process_worker(url: str, requests: int, taken: Any) -> None:
    engine = make_engine(url)
    try:
        count = _hammer(session_factory(engine), requests)
        with taken.get_lock():
            taken.value += count
    finally:
        engine.dispose()


def test_processes_never_pass_the_limit(database_url: str, sessions: sessionmaker[Session]) -> None:
    context = multiprocessing.get_context("fork")
    taken = context.Value("i", 0)
    workers = [
        context.Process(target=_process_worker, args=(database_url, 60, taken)) for _ in range(4)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    assert [worker.exitcode for worker in workers] == [0, 0, 0, 0]
    assert taken.value == LIMIT // ITEMS
    with sessions() as session:
        assert _used(session) == taken.value * ITEMS <= LIMIT


def _used(session: Session) -> int:
    return peek(session, QuotaKind.GRANT_DAY, GRANT, LIMIT, NOW).used
