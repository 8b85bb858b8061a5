"""Counts read from the node's database at scrape time, without a scrape ever waiting on it long.

``ScrapedCounts`` is the collector behind ``bidui_applications_*`` (article 25) and
``bidui_discrepancies_*`` (article 26): a subclass names what it reads (``subject``), the counter
of failed reads (``errors_metric``) and the families it exports from what was read
(``families``); the read itself is a callable given a date in China.
"""

from __future__ import annotations

import datetime as _dt
import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any, ClassVar, Generic, TypeVar

from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy.orm import Session, sessionmaker

from provider_node.core.chores import FailureLog
from provider_node.core.workdays import china_date
from provider_node.store.engine import read_only_session

__all__ = ["ScrapedCounts", "snapshot_reader"]

_Counts = TypeVar("_Counts")
_log = logging.getLogger("provider_node.observability.metrics")


def _utcnow() -> _dt.datetime:
    return _dt.datetime.now(_dt.UTC)


def snapshot_reader(
    sessions: sessionmaker[Session],
    count: Callable[[Session, _dt.date], _Counts],
    *,
    statement_timeout: float = 5.0,
) -> Callable[[_dt.date], _Counts]:
    """``count(session, today)`` in a read-only snapshot that blocks no writer; on PostgreSQL
    cancelled after ``statement_timeout`` seconds (a SQLite reader never waits for a writer)."""

    def read(today: _dt.date) -> _Counts:
        with read_only_session(sessions, statement_timeout=statement_timeout) as session:
            return count(session, today)

    return read


class ScrapedCounts(Collector, Generic[_Counts]):
    """Counts read with ``read`` at scrape time, at most every ``refresh_seconds``.

    The read runs on a thread of its own, one at a time, and a scrape waits for it ``wait_seconds``
    at most, then answers with the last counts read. So a slow, locked or unreachable database
    delays a scrape by ``wait_seconds`` at worst (well inside Prometheus's default 10 s scrape
    timeout) and holds one connection at most (freed by the reader's statement timeout), however
    many scrapers come; and a second scraper within ``refresh_seconds`` costs no query. Counts read
    more than ``max_age_seconds`` ago are not exported at all: an absent series says "unknown",
    where a stale one would keep saying "3 pending". Every failed read (an error, or PostgreSQL
    cancelling it) adds one to the ``errors_metric`` counter and is retried at the next scrape
    after ``refresh_seconds``; the first of a run is logged at warning, its end at info.
    """

    #: What is read, as the warnings name it ("applications").
    subject: ClassVar[str]
    #: The counter of failed reads: its name (without ``_total``) and help.
    errors_metric: ClassVar[tuple[str, str]]
    #: Counts to describe the families with (describing must not read the database).
    empty: ClassVar[Any]

    def __init__(
        self,
        read: Callable[[_dt.date], _Counts],
        *,
        clock: Callable[[], _dt.datetime] = _utcnow,
        refresh_seconds: float = 5.0,
        wait_seconds: float = 2.0,
        max_age_seconds: float = 60.0,
    ) -> None:
        self._read = read
        self._clock = clock
        self._refresh = _dt.timedelta(seconds=refresh_seconds)
        self._wait = wait_seconds
        self._max_age = _dt.timedelta(seconds=max_age_seconds)
        self._failures = FailureLog(_log, f"read the {self.subject} for the metrics")
        self._lock = threading.Lock()
        self._counts: _Counts | None = None
        self._read_at: _dt.datetime | None = None  # when the read that gave _counts began
        self._tried_at: _dt.datetime | None = None  # when the latest read began
        self._reading: threading.Event | None = None  # set when the read under way ends
        self._errors = 0

    def families(self, counts: _Counts) -> Iterable[Metric]:
        """The metric families for ``counts``."""
        raise NotImplementedError

    def collect(self) -> Iterator[Metric]:
        now = self._clock()
        reading = self._start_read(now)
        if reading is not None:
            reading.wait(self._wait)
        with self._lock:
            counts, read_at, failed = self._counts, self._read_at, self._errors
        yield self._scrape_errors(failed)
        if counts is not None and read_at is not None and _within(now - read_at, self._max_age):
            yield from self.families(counts)

    def describe(self) -> Iterable[Metric]:
        # The names, for the registry's duplicate check: describing must not read the database.
        return [self._scrape_errors(0), *self.families(self.empty)]

    def _scrape_errors(self, failed: int) -> Metric:
        name, documentation = self.errors_metric
        return CounterMetricFamily(name, documentation, value=failed)

    def _start_read(self, now: _dt.datetime) -> threading.Event | None:
        """The read to wait for: the one under way, else a new one if the last began more than
        ``refresh_seconds`` ago; None when the counts are fresh enough."""
        with self._lock:
            if self._reading is not None:
                return self._reading
            if self._tried_at is not None and _within(now - self._tried_at, self._refresh):
                return None
            self._tried_at = now
            done = self._reading = threading.Event()
        name = f"bidui-{self.subject.replace(' ', '-')}"
        threading.Thread(target=self._read_counts, args=(now, done), name=name, daemon=True).start()
        return done

    def _read_counts(self, now: _dt.datetime, done: threading.Event) -> None:
        try:
            counts = self._read(china_date(now))
        except Exception as problem:  # the database is away or too slow: a later scrape retries
            with self._lock:
                self._errors += 1
            self._failures.failed(problem, "at the next scrape")
        else:
            with self._lock:
                self._counts, self._read_at = counts, now
            self._failures.succeeded()
        finally:
            with self._lock:
                self._reading = None
            done.set()


def _within(age: _dt.timedelta, limit: _dt.timedelta) -> bool:
    """A clock set back makes an age negative: treated as too old, so the counts are read again."""
    return _dt.timedelta(0) <= age < limit
