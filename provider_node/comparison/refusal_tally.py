"""Repeated refusals of one source, counted into one audit record per window (article 35).

A department or a certificate whose requests keep being refused (a misconfigured job, a revoked
certificate still in use, someone probing) would otherwise cost the store one audit write per
refusal: about 370 a second from one sender, taken from every other department's share of the
store. So within a window the first refusal of a kind is recorded in full, as it always was,
and the ones that follow it are only counted::

    refusal 1 of (dept-a, PERMISSION_DENIED)  -> its own record, at once (the window opens)
    refusals 2..N within ``window`` seconds    -> counted here, no store work
    the window closes (``flush``)              -> one ``refusals`` record: N-1 of them, the first
                                                  and last time, the last message, related_id =
                                                  the first refusal's comparison id

Every refusal is accounted for: the records of one window add up to what the senders received.
What a window counts is in memory until it is flushed; ``flush(everything=True)`` at a graceful
stop writes them all, and only a node killed outright loses at most one window's counts (its
metrics, ``bidui_refusals_total``, are lost with it too).

A refusal that closes a comparison on record as opened (blinded step 2) is never counted here:
the opening must be closed by a record of its own.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy.orm import Session

from provider_node.audit.log import AuditLog
from provider_node.audit.records import AuditEntry
from provider_node.comparison.open_comparisons import recorded
from provider_node.core.vocabulary import Action, Outcome

__all__ = ["RefusalTally"]

#: How many sources may have a window open at once; beyond it every refusal is recorded alone
#: (memory stays bounded whatever the number of certificates a sender cycles through).
MAX_OPEN_WINDOWS = 10_000

_AGGREGATE = uuid.UUID("0c4f8a4e-1d2b-4f0e-9d6c-5a7e3b2c1f90")  # namespace of window records


@dataclass
class _Window:
    first: AuditEntry
    opened: float
    first_at: datetime
    last_at: datetime
    last_message: str = ""
    count: int = 0
    first_recorded: bool = True


class RefusalTally:
    """Decides whether a refusal needs its own record, and keeps the count of those that do not.

    ``window`` seconds (0: every refusal has its own record); ``monotonic`` measures windows,
    ``clock`` gives the times the records state. Thread-safe.
    """

    def __init__(
        self,
        window: float,
        *,
        monotonic: Callable[[], float],
        clock: Callable[[], datetime],
    ) -> None:
        if window < 0:
            raise ValueError("the refusal window cannot be negative")
        self.window = window
        self._monotonic = monotonic
        self._clock = clock
        self._windows: dict[tuple[str, ...], _Window] = {}
        # Closed windows with counts whose record could not be written yet.
        self._closed: list[_Window] = []
        self._lock = threading.Lock()

    def counted(self, entry: AuditEntry, message: str) -> bool:
        """True if ``entry`` (a refusal) was counted into its source's open window and needs no
        record of its own. False if the caller must record it: it then opens the window (at
        once, so refusals arriving while its record is written are counted against it), and
        the caller says ``lost`` if its record could not be written."""
        if self.window == 0 or entry.outcome != Outcome.REFUSED or entry.related_id:
            return False
        key = _source(entry)
        now = self._monotonic()
        with self._lock:
            window = self._windows.get(key)
            if window is not None and now - window.opened < self.window:
                window.count += 1
                window.last_at = self._clock()
                window.last_message = message
                return True
            if window is not None and window.count:
                self._closed.append(window)  # its time is up and ``flush`` has not come yet
            if window is not None or len(self._windows) < MAX_OPEN_WINDOWS:
                wall = self._clock()
                self._windows[key] = _Window(entry, now, wall, wall)
            return False

    def lost(self, entry: AuditEntry) -> None:
        """The record of ``entry``, which opened its window, could not be written: the window's
        record will count what it counted without pointing to it."""
        with self._lock:
            window = self._windows.get(_source(entry))
            if window is not None and window.first is entry:
                window.first_recorded = False

    def flush(self, audit: AuditLog, *, everything: bool = False) -> int:
        """Record every window that has closed (all of them if ``everything``) and counted
        refusals; returns how many records were written. Raises while the store is down: what
        was not written is kept, and the next flush writes it (each window at most once)."""
        with self._lock:
            now = self._monotonic()
            for key, window in list(self._windows.items()):
                if everything or now - window.opened >= self.window:
                    del self._windows[key]
                    if window.count:
                        self._closed.append(window)
            closed, self._closed = self._closed, []
        written = 0
        try:
            while closed:
                record = _window_record(closed[0])

                def act(session: Session, record: AuditEntry = record) -> AuditEntry | None:
                    return None if recorded(session, record.comparison_id) else record

                audit.append_unless(act)
                closed.pop(0)
                written += 1
        finally:
            with self._lock:
                self._closed[:0] = closed
        return written

    @property
    def pending(self) -> int:
        """Refusals counted and not yet on record."""
        with self._lock:
            return sum(window.count for window in (*self._windows.values(), *self._closed))


def _source(entry: AuditEntry) -> tuple[str, ...]:
    """Who was refused and how: a department (or, unidentified, its certificate) and the status."""
    return (entry.requester, entry.cert_fingerprint, entry.action, entry.status_code)


def _window_record(window: _Window) -> AuditEntry:
    first = window.first
    times = " – ".join(t.isoformat(timespec="seconds") for t in (window.first_at, window.last_at))
    return replace(
        first,
        action=str(Action.REFUSALS),
        item_count=window.count,
        match_count=0,
        payload_sha256="",
        purpose="",
        request_id="",
        duration_ms=0.0,
        grant_id="",
        # The window may have counted other resources' refusals: it names the source only.
        resource_id="",
        comparison_key="",
        mode="",
        related_id=first.comparison_id if window.first_recorded else "",
        reason=(
            f"{window.count} further {first.status_code} refusals of this source after "
            f"{first.comparison_id if window.first_recorded else 'one not recorded'} ({times}); "
            f"the last: {window.last_message}"
        )[:1000],
        # Derived from the window's first record: written at most once, however often retried.
        comparison_id=str(uuid.uuid5(_AGGREGATE, first.comparison_id)),
    )
