"""Open blinded comparisons: between BlindEvaluate (step 1) and MatchBlinded (step 2).

A session remembers who opened it, the request header, the item count and the running payload
digest, so step 2 can be checked against step 1 and audited as one comparison. The table is
bounded twice: in all, and **per department**, so one department filling its share can never make
another department's blinded comparisons fail.
"""

from __future__ import annotations

import hmac
import threading
from collections.abc import Callable
from dataclasses import dataclass

from provider_node.comparison.request import ComparisonRequest
from provider_node.core import errors
from provider_node.core.messages import Header
from provider_node.identity.auth import Caller

__all__ = ["Session", "SessionTable"]


@dataclass
class Session:
    """An open blinded comparison: its request, the elements evaluated, the digest so far."""

    request: ComparisonRequest
    item_count: int
    digest: hmac.HMAC
    expires: float = 0.0

    @property
    def caller(self) -> Caller:
        return self.request.caller

    @property
    def header(self) -> Header:
        return self.request.header


class SessionTable:
    """Thread-safe table of open sessions keyed by comparison id."""

    def __init__(
        self,
        *,
        lifetime: float,
        max_open: int,
        max_open_per_department: int,
        monotonic: Callable[[], float],
    ) -> None:
        self._lifetime = lifetime
        self._max_open = max_open
        self._max_per_department = max_open_per_department
        self._monotonic = monotonic
        self._sessions: dict[str, Session] = {}
        self._per_department: dict[str, int] = {}
        self._lock = threading.Lock()

    def check_room(self, department: str) -> None:
        """Raise ``TooManySessionsError`` if ``department`` may not open another session now."""
        with self._lock:
            self._check_room(department)

    def _check_room(self, department: str) -> None:
        if self._per_department.get(department, 0) >= self._max_per_department:
            raise errors.TooManySessionsError(
                f"your department has {self._max_per_department} blinded comparisons open on this "
                "node, its limit: finish them (MatchBlinded) or retry after they expire"
            )
        if len(self._sessions) >= self._max_open:
            raise errors.TooManySessionsError(
                "too many blinded comparisons are open on this node; retry shortly"
            )

    def open(self, comparison_id: str, session: Session) -> None:
        """Add ``session`` (its ``expires`` is set here); re-checks room under the lock."""
        department = session.caller.department
        with self._lock:
            self._check_room(department)
            session.expires = self._monotonic() + self._lifetime
            self._sessions[comparison_id] = session
            self._per_department[department] = self._per_department.get(department, 0) + 1

    def take(self, comparison_id: str, caller: Caller) -> Session | None:
        """Remove and return the caller's session (perhaps expired: see ``is_expired``).

        None if there is none; another department's session is reported exactly like a missing
        one, and left open.
        """
        with self._lock:
            session = self._sessions.get(comparison_id)
            if session is None or session.caller != caller:
                return None
            self._forget(comparison_id, session)
        return session

    def is_expired(self, session: Session) -> bool:
        return session.expires < self._monotonic()

    def expired(self) -> dict[str, Session]:
        """The sessions whose lifetime has passed, still in the table: ``forget`` each once its
        ``abandoned`` record is committed, so a store that is down loses none of them."""
        now = self._monotonic()
        with self._lock:
            return {cid: s for cid, s in self._sessions.items() if s.expires < now}

    def all(self) -> dict[str, Session]:
        """Every open session, still in the table (for a graceful stop)."""
        with self._lock:
            return dict(self._sessions)

    def forget(self, comparison_id: str) -> None:
        """Drop a session (its comparison is closed in the audit log); no-op if already gone."""
        with self._lock:
            session = self._sessions.get(comparison_id)
            if session is not None:
                self._forget(comparison_id, session)

    def __contains__(self, comparison_id: object) -> bool:
        with self._lock:
            return comparison_id in self._sessions

    def _forget(self, comparison_id: str, session: Session) -> None:
        del self._sessions[comparison_id]
        department = session.caller.department
        left = self._per_department[department] - 1
        if left:
            self._per_department[department] = left
        else:
            del self._per_department[department]

    def __len__(self) -> int:
        with self._lock:
            return len(self._sessions)
