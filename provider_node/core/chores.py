"""The running node's chores in the background, and how a chore that keeps failing says so.

A chore that touches the database fails as long as the database is away, perhaps for hours.
``FailureLog`` turns such a run of failures into one warning when it starts and one line when the
chore works again, instead of a warning every round; the chore is retried at its next round.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

__all__ = ["FailureLog", "Periodic"]

_log = logging.getLogger(__name__)


class FailureLog:
    """Logs the first failure of a run at warning (the rest at debug), and the recovery at info.

    Not thread-safe: one chore, run by one thread at a time, owns one.
    """

    def __init__(self, logger: logging.Logger, chore: str) -> None:
        self._logger = logger
        self._chore = chore
        self._failing = False

    def failed(self, problem: BaseException, retry: str) -> None:
        """``retry`` says when the chore is tried again ("in 60 s", "at the next scrape")."""
        level = logging.DEBUG if self._failing else logging.WARNING
        self._failing = True
        first_line = (str(problem).strip().splitlines() or [""])[0][:300]
        self._logger.log(
            level,
            "could not %s (%s: %s); will retry %s",
            self._chore,
            type(problem).__name__,
            first_line,
            retry,
        )

    def succeeded(self) -> None:
        if self._failing:
            self._failing = False
            self._logger.info("%s works again", self._chore)


class Periodic(threading.Thread):
    """Runs ``work`` every ``interval`` seconds on a daemon thread, first after one interval,
    until ``stop``; a failure is logged through ``FailureLog`` and retried the next round."""

    def __init__(self, name: str, chore: str, work: Callable[[], None], interval: float) -> None:
        super().__init__(name=name, daemon=True)
        self._work = work
        self._interval = interval
        self._failures = FailureLog(_log, chore)
        self._stopped = threading.Event()

    def run_once(self) -> bool:
        """One round now, in the caller's thread; False if it failed (and was logged)."""
        try:
            self._work()
        except Exception as problem:  # the store may be away: the next round retries
            self._failures.failed(problem, f"in {self._interval:g} s")
            return False
        self._failures.succeeded()
        return True

    def run(self) -> None:
        while not self._stopped.wait(self._interval):
            self.run_once()

    def stop(self, timeout: float = 30.0) -> None:
        """End the thread, waiting up to ``timeout`` seconds for a round in progress (so the
        caller can then dispose of the engine it uses)."""
        self._stopped.set()
        if self.is_alive():
            self.join(timeout)
