"""provider_node.observability.metrics: names, bounded labels, index age and applications at scrape
time (on
SQLite and PostgreSQL, and with a slow, locked or absent database), the real endpoint."""

from __future__ import annotations

import datetime as _dt
import logging
import socket
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from comparator.periods import duration_seconds
from provider_node.core import errors
from provider_node.governance import grant_lookup, grants
from provider_node.observability.collectors import ApplicationsCollector, application_counts_reader
from provider_node.observability.endpoint import MetricsServer, start_metrics_server
from provider_node.observability.metrics import REFUSAL_REASONS, RPC_DURATION_BUCKETS, NodeMetrics
from provider_node.store.engine import make_engine, session_factory

BUILT = _dt.datetime(2026, 1, 1, 12, 0, tzinfo=_dt.UTC)


class Clock:
    def __init__(self) -> None:
        self.now = BUILT + _dt.timedelta(seconds=90)

    def __call__(self) -> _dt.datetime:
        return self.now


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def served(registry: CollectorRegistry) -> Iterator[tuple[MetricsServer, int]]:
    server, port = start_metrics_server("127.0.0.1:0", registry)
    try:
        yield server, port
    finally:
        server.shutdown()


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def scrape(port: int) -> Samples:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        assert response.status == 200
        return parse(response.read().decode("utf-8"))


def exposition(registry: CollectorRegistry) -> Samples:
    """What Prometheus would read from ``registry``, parsed back from the text format."""
    return parse(generate_latest(registry).decode("utf-8"))


def labels(**values: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(values.items()))


def test_scraped_over_loopback(
    registry: CollectorRegistry, served: tuple[MetricsServer, int]
) -> None:
    clock = Clock()
    metrics = NodeMetrics(registry, known_resources=["residents"], clock=clock)
    _, port = served
    assert port > 0
    metrics.record_comparison(
        "luzhou-civil-affairs", "residents", "blinded", "answered", items=10, matches=4
    )
    metrics.record_comparison(
        "luzhou-civil-affairs", "residents", "blinded", "answered", items=5, matches=1
    )
    metrics.record_refusal("not_shared")
    metrics.record_audit_failure()
    metrics.observe_rpc("CompareHashed", 0.003)
    metrics.set_index("residents", "id_number", "hashed", 200, BUILT)

    samples = scrape(port)
    who = {"requester": "luzhou-civil-affairs", "resource": "residents", "mode": "blinded"}
    answered = labels(**who, outcome="answered")
    assert samples[("bidui_comparisons_total", answered)] == 2
    assert samples[("bidui_comparison_items_total", answered)] == 15
    # Matches per resource and mode only: never a requester's own result.
    where = labels(resource="residents", mode="blinded")
    assert samples[("bidui_comparison_matches_total", where)] == 5
    assert not any(
        name == "bidui_comparison_matches_total" and "requester" in dict(key)
        for name, key in samples
    )
    assert samples[("bidui_refusals_total", labels(reason="not_shared"))] == 1
    assert samples[("bidui_audit_failures_total", ())] == 1
    method = labels(method="CompareHashed")
    assert samples[("bidui_rpc_duration_seconds_count", method)] == 1
    assert (
        samples[("bidui_rpc_duration_seconds_bucket", labels(method="CompareHashed", le="0.005"))]
        == 1
    )
    assert (
        samples[("bidui_rpc_duration_seconds_bucket", labels(method="CompareHashed", le="0.001"))]
        == 0
    )
    index = labels(resource="residents", key="id_number", mode="hashed")
    assert samples[("bidui_index_records", index)] == 200
    assert samples[("bidui_index_age_seconds", index)] == 90

    # The age is computed at scrape time.
    clock.now += _dt.timedelta(hours=1)
    assert scrape(port)[("bidui_index_age_seconds", index)] == 3690
    assert ("bidui_index_stale", index) not in samples  # no update period given


def test_an_index_older_than_its_update_period_is_stale(registry: CollectorRegistry) -> None:
    clock = [BUILT + _dt.timedelta(hours=23)]
    metrics = NodeMetrics(registry, known_resources=["residents"], clock=lambda: clock[0])
    metrics.set_index("residents", "id_number", "hashed", 200, BUILT, duration_seconds("P1D"))
    where = {"resource": "residents", "key": "id_number", "mode": "hashed"}
    assert registry.get_sample_value("bidui_index_update_period_seconds", where) == 86400
    assert registry.get_sample_value("bidui_index_stale", where) == 0
    clock[0] = BUILT + _dt.timedelta(hours=24, seconds=1)  # the daily refresh did not come
    assert registry.get_sample_value("bidui_index_stale", where) == 1


def test_label_values_stay_bounded(registry: CollectorRegistry) -> None:
    metrics = NodeMetrics(registry, known_resources=["residents"])
    metrics.record_comparison("dept", "no-such-resource-from-the-network", "quantum", "weird")
    metrics.record_refusal("a reason nobody listed")
    value = registry.get_sample_value(
        "bidui_comparisons_total",
        {"requester": "dept", "resource": "unknown", "mode": "other", "outcome": "other"},
    )
    assert value == 1
    assert registry.get_sample_value("bidui_refusals_total", {"reason": "other"}) == 1


def test_buckets_span_a_millisecond_to_a_minute() -> None:
    assert RPC_DURATION_BUCKETS[0] == 0.001
    assert RPC_DURATION_BUCKETS[-1] == 60.0
    assert list(RPC_DURATION_BUCKETS) == sorted(RPC_DURATION_BUCKETS)


def test_naive_built_at_is_refused(registry: CollectorRegistry) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        NodeMetrics(registry).set_index("r", "k", "hashed", 1, _dt.datetime(2026, 1, 1))


def test_shutdown_frees_the_port(registry: CollectorRegistry) -> None:
    server, port = start_metrics_server("127.0.0.1:0", registry)
    server.shutdown()
    again, again_port = start_metrics_server(f"127.0.0.1:{port}", registry)
    try:
        assert again_port == port
        assert again.port == port
    finally:
        again.shutdown()


def test_bad_address(registry: CollectorRegistry) -> None:
    with pytest.raises(ValueError):
        start_metrics_server("nowhere", registry)


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback here")
def test_ipv6_loopback(registry: CollectorRegistry) -> None:
    NodeMetrics(registry).record_audit_failure()
    server, port = start_metrics_server("[::1]:0", registry)
    try:
        url = f"http://[::1]:{port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            assert b"bidui_audit_failures_total 1.0" in response.read()
    finally:
        server.shutdown()


# ---- refusal reasons ---------------------------------------------------------------------------


def _subclasses(cls: type) -> Iterator[type]:
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def test_every_refusal_reason_is_a_label_of_its_own(registry: CollectorRegistry) -> None:
    import provider_node.setup.runtime  # noqa: F401  (every module, so every error class, is loaded)

    issue_7 = {
        "quota_exceeded",
        "too_many_sessions",
        "not_granted",
        "key_not_granted",
        "mode_not_granted",
        "grant_not_yet_valid",
        "grant_expired",
        "grant_revoked",
        "unknown_record",
        "state_conflict",
        "calendar_range",
        "approval_too_wide",
    }
    assert issue_7 <= REFUSAL_REASONS
    for error in _subclasses(errors.NodeError):
        assert error.reason in REFUSAL_REASONS, error
    metrics = NodeMetrics(registry)
    revoked = errors.GrantRefusal("revoked", why=errors.GrantRefusalReason.REVOKED)
    metrics.record_refusal(revoked.reason)
    assert registry.get_sample_value("bidui_refusals_total", {"reason": "grant_revoked"}) == 1
    assert registry.get_sample_value("bidui_refusals_total", {"reason": "other"}) is None


# ---- applications, read from the database at scrape time ----------------------------------------

CHINA = _dt.timezone(_dt.timedelta(hours=8))
# Monday 2025-09-29 in China: five working days later, across National Day, is Monday 2025-10-13.
SUBMITTED = _dt.datetime(2025, 9, 29, 10, 0, tzinfo=CHINA)
OFFICER = "operator 王芳"
PENDING = ("bidui_applications_pending", ())
OVERDUE = ("bidui_applications_overdue", ())
SCRAPE_ERRORS = ("bidui_applications_scrape_errors_total", ())


def decided(deadline: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    return ("bidui_applications_decided_total", labels(deadline=deadline))


def apply(session: Session, now: _dt.datetime = SUBMITTED) -> str:
    return grants.submit_application(
        session,
        "luzhou-civil-affairs",
        "residents",
        ["id_number"],
        ["hashed"],
        "benefit eligibility review",
        100,
        _dt.date(2026, 9, 30),
        now,
    ).id


def eventually(check: Callable[[], bool], seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_applications_are_read_from_the_database_at_scrape_time(
    sessions: sessionmaker[Session],
) -> None:
    with sessions.begin() as session:
        on_time, late, overdue = (apply(session) for _ in range(3))
        apply(session, _dt.datetime(2025, 10, 10, 10, 0, tzinfo=CHINA))  # due 2025-10-16
    with sessions.begin() as session:
        grants.approve(session, on_time, OFFICER, _dt.datetime(2025, 10, 9, 15, tzinfo=CHINA))
        grants.refuse(session, late, "no duty", OFFICER, _dt.datetime(2025, 10, 14, tzinfo=CHINA))
    clock = Clock()
    clock.now = _dt.datetime(2025, 10, 14, 12, 0, tzinfo=CHINA)
    registry = CollectorRegistry()
    NodeMetrics(registry, clock=clock).track_applications(sessions)

    samples = exposition(registry)
    assert (samples[PENDING], samples[OVERDUE]) == (2, 1)
    assert (samples[decided("met")], samples[decided("missed")]) == (1, 1)
    assert samples[SCRAPE_ERRORS] == 0

    with sessions.begin() as session:
        grants.refuse(session, overdue, "no duty", OFFICER, clock.now)
    clock.now += _dt.timedelta(seconds=1)
    assert exposition(registry)[PENDING] == 2  # read at most every 5 s
    clock.now += _dt.timedelta(seconds=5)
    samples = exposition(registry)
    assert (samples[PENDING], samples[OVERDUE], samples[decided("missed")]) == (1, 0, 2)


def test_a_writer_holding_its_transaction_open_delays_no_scrape(
    sessions: sessionmaker[Session],
) -> None:
    registry = CollectorRegistry()
    NodeMetrics(registry, clock=Clock()).track_applications(sessions)
    # On SQLite the writer holds the database's write lock (BEGIN IMMEDIATE) until it ends.
    with sessions.begin() as writer:
        apply(writer)
        started = time.monotonic()
        samples = exposition(registry)
        assert time.monotonic() - started < 1.5
        assert samples[PENDING] == 0  # the committed state, read without waiting
    clock_later = Clock()
    clock_later.now += _dt.timedelta(minutes=1)
    registry = CollectorRegistry()
    NodeMetrics(registry, clock=clock_later).track_applications(sessions)
    assert exposition(registry)[PENDING] == 1


# PostgreSQL only: a SQLite reader in WAL mode never waits for a lock.
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_locked_table_costs_a_scrape_its_wait_and_is_counted_as_an_error(
    engine: Engine, sessions: sessionmaker[Session]
) -> None:
    registry = CollectorRegistry()
    read = application_counts_reader(sessions, statement_timeout=1.0)
    registry.register(ApplicationsCollector(read, clock=Clock(), wait_seconds=0.2))
    with engine.connect() as locker:
        locker.exec_driver_sql("LOCK TABLE applications IN ACCESS EXCLUSIVE MODE")
        started = time.monotonic()
        samples = exposition(registry)
        assert time.monotonic() - started < 0.9  # the scrape's wait, not the statement timeout
        assert PENDING not in samples and samples[SCRAPE_ERRORS] == 0
        # PostgreSQL cancels the read after its statement timeout: one error, and no second read
        # within the refresh interval.
        assert eventually(lambda: exposition(registry)[SCRAPE_ERRORS] == 1)
        assert PENDING not in exposition(registry)


def test_an_absent_database_is_counted_and_warned_about_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'no-such-directory' / 'audit.db'}")
    clock = Clock()
    registry = CollectorRegistry()
    registry.register(
        ApplicationsCollector(application_counts_reader(session_factory(engine)), clock=clock)
    )
    try:
        with caplog.at_level(logging.DEBUG, logger="provider_node"):
            first = exposition(registry)
            clock.now += _dt.timedelta(seconds=1)
            second = exposition(registry)  # the last read began 1 s ago: not tried again
            clock.now += _dt.timedelta(seconds=5)
            third = exposition(registry)
    finally:
        engine.dispose()
    assert PENDING not in first and PENDING not in third
    assert [first[SCRAPE_ERRORS], second[SCRAPE_ERRORS], third[SCRAPE_ERRORS]] == [1, 1, 2]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "read the applications for the metrics" in warnings[0]
    assert "OperationalError" in warnings[0]


class SlowReader:
    """A reader that blocks while ``gate`` is clear, then answers ``counts`` or raises."""

    def __init__(self) -> None:
        self.counts = grant_lookup.ApplicationCounts(1, 0, 0, 0)
        self.problem: Exception | None = None
        self.gate = threading.Event()
        self.gate.set()
        self.days: list[_dt.date] = []

    def __call__(self, today: _dt.date) -> grant_lookup.ApplicationCounts:
        self.days.append(today)
        self.gate.wait(10)
        if self.problem is not None:
            raise self.problem
        return self.counts


def test_a_slow_read_is_waited_for_briefly_and_stale_counts_are_not_exported(
    caplog: pytest.LogCaptureFixture,
) -> None:
    reader, clock = SlowReader(), Clock()
    clock.now = _dt.datetime(2026, 3, 1, 20, 0, tzinfo=_dt.UTC)  # already 2 March in China
    registry = CollectorRegistry()
    registry.register(ApplicationsCollector(reader, clock=clock, wait_seconds=0.1))
    assert exposition(registry)[PENDING] == 1
    assert reader.days == [_dt.date(2026, 3, 2)]

    reader.gate.clear()
    reader.counts = grant_lookup.ApplicationCounts(2, 0, 0, 0)
    clock.now += _dt.timedelta(seconds=10)
    started = time.monotonic()
    assert exposition(registry)[PENDING] == 1  # the last counts, after a 0.1 s wait
    assert time.monotonic() - started < 1.0
    clock.now += _dt.timedelta(seconds=10)
    assert exposition(registry)[PENDING] == 1
    assert len(reader.days) == 2  # one read at a time, however many scrapes
    reader.gate.set()
    assert eventually(lambda: exposition(registry)[PENDING] == 2)

    # Counts read more than 60 s ago are not exported: unknown, rather than a stale number.
    reader.problem = RuntimeError("the database is away\nsecond line")
    clock.now += _dt.timedelta(seconds=61)
    with caplog.at_level(logging.INFO, logger="provider_node"):
        samples = exposition(registry)
        assert PENDING not in samples and samples[SCRAPE_ERRORS] == 1
        reader.problem = None
        clock.now += _dt.timedelta(seconds=6)
        assert exposition(registry)[PENDING] == 2
    messages = [r.getMessage() for r in caplog.records]
    assert any("the database is away); will retry at the next scrape" in m for m in messages)
    assert not any("second line" in m for m in messages)
    assert messages[-1] == "read the applications for the metrics works again"


def test_metrics_over_tls_need_a_client_certificate_from_the_ca(tmp_path: Path) -> None:
    import ssl
    import urllib.error
    import urllib.request

    from provider_node.identity.pki import create_ca, issue_client_cert, issue_server_cert
    from provider_node.observability.endpoint import MetricsTls

    ca = create_ca(tmp_path, "metrics CA")
    node = issue_server_cert(ca, tmp_path)
    scraper = issue_client_cert(ca, tmp_path / "clients", "prometheus")
    tls = MetricsTls(node.cert_path, node.key_path, ca.cert_path)
    server, port = start_metrics_server("127.0.0.1:0", CollectorRegistry(), tls=tls)
    try:
        context = ssl.create_default_context(cafile=str(ca.cert_path))
        url = f"https://localhost:{port}/metrics"
        with pytest.raises((urllib.error.URLError, ssl.SSLError, ConnectionError)):
            urllib.request.urlopen(url, context=context, timeout=5).read()
        context.load_cert_chain(scraper.cert_path, scraper.key_path)
        with urllib.request.urlopen(url, context=context, timeout=5) as response:
            assert response.status == 200
    finally:
        server.shutdown()


def test_store_up_falls_on_an_audit_failure_and_recovers_after_the_window() -> None:
    now = [_dt.datetime(2026, 3, 2, tzinfo=_dt.UTC)]
    registry = CollectorRegistry()
    metrics = NodeMetrics(registry, clock=lambda: now[0])

    def store_up() -> float | None:
        return registry.get_sample_value("bidui_audit_store_up")

    assert store_up() == 1.0
    metrics.record_audit_failure()
    assert store_up() == 0.0
    now[0] += _dt.timedelta(seconds=31)
    assert store_up() == 1.0
