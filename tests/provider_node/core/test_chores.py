"""The node's background chores: quota windows pruned two days after they end (SQLite and
PostgreSQL), a failing chore warned about once and retried, and both wired into a running node."""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from provider_node.access.quotas import QuotaPruner, consume_department_minute, consume_grant_day
from provider_node.config import load_config
from provider_node.core.chores import Periodic
from provider_node.resources.catalog import build_catalog
from provider_node.resources.keys import NodeKeys
from provider_node.resources.loader import load_resource
from provider_node.setup.bootstrap import init_node
from provider_node.setup.runtime import open_node, start_node
from provider_node.store.engine import make_engine, session_factory
from provider_node.store.models import QuotaUsage

GRANT = "7d5c4d1e-9c3b-4a52-8f9e-3f1f2b6a0c11"
DEPARTMENT = "luzhou-civil-affairs"
# 10:30 on Monday 2025-09-29 in China.
NOW = datetime(2025, 9, 29, 2, 30, 15, tzinfo=UTC)


def test_quota_windows_are_kept_two_days_after_they_end(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        for days in (3, 2, 0):
            consume_grant_day(session, GRANT, 10, 1, NOW - timedelta(days=days))
        for age in (timedelta(days=2, minutes=1), timedelta(days=1)):
            consume_department_minute(session, DEPARTMENT, 10, 1, NOW - age)
    assert QuotaPruner(sessions, clock=lambda: NOW).run_once()
    with sessions() as session:
        left = sorted(session.execute(select(QuotaUsage.kind, QuotaUsage.window_start)).all())
    assert left == [
        # the minute that ended a day ago; the one that ended 2 days and 15 s ago is gone
        ("department_minute", datetime(2025, 9, 28, 2, 30, tzinfo=UTC)),
        # the China day that ended 1 day 10.5 hours ago, and today; the one before is gone
        ("grant_day", datetime(2025, 9, 26, 16, 0, tzinfo=UTC)),
        ("grant_day", datetime(2025, 9, 28, 16, 0, tzinfo=UTC)),
    ]


def test_a_failing_chore_is_warned_about_once_and_retried(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'no-such-directory' / 'audit.db'}")
    pruner = QuotaPruner(session_factory(engine), clock=lambda: NOW, interval=60)
    try:
        with caplog.at_level(logging.DEBUG, logger="provider_node.core.chores"):
            assert not pruner.run_once()
            assert not pruner.run_once()
    finally:
        engine.dispose()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert warnings[0].startswith("could not delete old quota windows (OperationalError: ")
    assert warnings[0].endswith("will retry in 60 s")

    rounds: list[int] = []
    recovered = threading.Event()

    def flaky() -> None:
        rounds.append(1)
        if len(rounds) < 3:
            raise RuntimeError("store away")
        recovered.set()

    caplog.clear()
    chore = Periodic("bidui-test-chore", "do the chore", flaky, interval=0.01)
    with caplog.at_level(logging.DEBUG, logger="provider_node.core.chores"):
        chore.start()
        assert recovered.wait(5)
        chore.stop()
    assert not chore.is_alive()
    failed = "could not do the chore (RuntimeError: store away); will retry in 0.01 s"
    levels = [(r.levelno, r.getMessage()) for r in caplog.records]
    assert levels[:3] == [
        (logging.WARNING, failed),
        (logging.DEBUG, failed),
        (logging.INFO, "do the chore works again"),
    ]


def test_a_running_node_exports_its_applications_and_prunes(tmp_path: Path) -> None:
    config = load_config(init_node(tmp_path).config_path)
    keys = NodeKeys.load(config.keys.dir)
    for resource in build_catalog(config).values():
        load_resource(resource, config, keys)
    registry = CollectorRegistry()
    opened = open_node(config, registry=registry)
    started = start_node(opened, listen="127.0.0.1:0", metrics_listen="127.0.0.1:0")
    try:
        assert registry.get_sample_value("bidui_applications_pending") == 0
        assert opened.pruner.is_alive()
    finally:
        started.stop(0)
    assert not opened.pruner.is_alive()
