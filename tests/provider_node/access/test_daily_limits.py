"""A department's items per day on one resource are capped, granted or not, per mode; another
department and another resource have their own; and a run shaped like an enumeration (many
items, almost none matched) is flagged once a day in the log and the metrics."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from sqlalchemy.orm import Session, sessionmaker

from provider_node.access.enumeration import EnumerationWatch
from provider_node.access.policy import AccessPolicy, ItemsPerDay, ItemsPerMinute
from provider_node.access.quotas import QuotaExceededError, QuotaKind, window_start
from provider_node.core.vocabulary import ComparisonMode as Mode
from provider_node.identity.auth import Caller
from provider_node.observability.metrics import NodeMetrics

CLERK = Caller("luzhou-civil-affairs", "ab" * 32)
OTHER = Caller("luzhou-tax", "cd" * 32)
NOW = datetime(2026, 12, 8, 2, 0, tzinfo=UTC)  # 10:00 in China


def _policy(sessions: sessionmaker[Session], clock: list[datetime]) -> AccessPolicy:
    return AccessPolicy(
        sessions,
        ItemsPerMinute(hashed=0, blinded=0),
        clock=lambda: clock[0],
        items_per_day={"residents": ItemsPerDay(hashed=100, blinded=10)},
    )


def _charge(policy: AccessPolicy, sessions: sessionmaker[Session], *args: object) -> None:
    charge = policy.charge(*args)  # type: ignore[arg-type]
    assert charge is not None
    with sessions.begin() as session:
        charge(session)


def test_a_day_s_items_on_a_resource_are_capped_per_department_and_mode(
    sessions: sessionmaker[Session],
) -> None:
    clock = [NOW]
    policy = _policy(sessions, clock)
    _charge(policy, sessions, CLERK, Mode.HASHED, "", 60, "residents")
    with pytest.raises(QuotaExceededError, match="40 remain") as refused:
        _charge(policy, sessions, CLERK, Mode.HASHED, "", 41, "residents")
    assert refused.value.resets_at == window_start(QuotaKind.DEPARTMENT_RESOURCE_DAY, NOW) + (
        timedelta(days=1)
    )
    _charge(policy, sessions, CLERK, Mode.HASHED, "", 40, "residents")  # exactly the day's cap
    _charge(policy, sessions, OTHER, Mode.HASHED, "", 100, "residents")  # its own day
    _charge(policy, sessions, CLERK, Mode.BLINDED, "", 10, "residents")  # its own mode
    assert policy.charge(CLERK, Mode.HASHED, "", 10**6, "other") is None  # no limit named
    clock[0] = NOW + timedelta(hours=14)  # 00:00 the next day in China
    _charge(policy, sessions, CLERK, Mode.HASHED, "", 100, "residents")


def test_a_run_shaped_like_an_enumeration_is_flagged_once_a_day(
    caplog: pytest.LogCaptureFixture,
) -> None:
    registry = CollectorRegistry()
    metrics = NodeMetrics(registry)
    clock = [NOW]
    watch = EnumerationWatch(
        metrics.record_enumeration_suspected, clock=lambda: clock[0], threshold=1000
    )
    assert not watch.record("luzhou-civil-affairs", "residents", 900, 700)  # its own clients
    assert not watch.record("luzhou-civil-affairs", "residents", 900, 0)  # 1,800 items, 39 %
    with caplog.at_level(logging.WARNING):
        for _ in range(10):
            watch.record("luzhou-tax", "residents", 500, 0)
    flagged = [r for r in caplog.records if "enumeration" in r.getMessage()]
    assert len(flagged) == 1  # once, however long the run goes on
    assert "luzhou-tax compared 1000 items against residents" in flagged[0].getMessage()
    exposition = generate_latest(registry).decode()
    assert (
        'bidui_enumeration_suspected_total{requester="luzhou-tax",resource="residents"} 1.0'
        in exposition
    )
    clock[0] = NOW + timedelta(days=1)  # a new day: counted afresh
    assert not watch.record("luzhou-tax", "residents", 999, 0)
    assert watch.record("luzhou-tax", "residents", 1, 0)
