"""Closing blinded comparisons whose second step never came: each is audited as ``abandoned``.

A blinded comparison is on record as ``opened`` once step 1 answers (``node.py``), and is always
closed later: answered, refused, or abandoned. ``SessionCloser`` writes the abandoned records:

- ``reap_expired``: sessions past their lifetime (the reaper calls this every round);
- ``abandon_all``: every open session, at a graceful stop once in-flight RPCs have finished;
- ``reconcile``: comparisons on record as opened that no process closed (a node killed between
  the two steps), safe to run in every node process (``open_comparisons.py``).

A session is forgotten only once its ``abandoned`` record is committed: with the store down it
stays, and the next round tries again.
"""

from __future__ import annotations

import datetime as _dt
import logging
from collections.abc import Callable, Mapping

from provider_node.audit.log import AuditLog
from provider_node.comparison.audit_trail import ComparisonAudit
from provider_node.comparison.open_comparisons import ABANDONED_STATUS, close, reconcile
from provider_node.comparison.sessions import Session, SessionTable
from provider_node.core import errors
from provider_node.core.vocabulary import ComparisonMode as Mode
from provider_node.core.vocabulary import Outcome
from provider_node.observability.metrics import NodeMetrics

__all__ = ["SessionCloser"]

_log = logging.getLogger(__name__)


class SessionCloser:
    """Audits blinded comparisons left open as ``abandoned``; thread-safe as its collaborators."""

    def __init__(
        self,
        audit: AuditLog,
        record: ComparisonAudit,
        metrics: NodeMetrics,
        sessions: SessionTable,
        clock: Callable[[], _dt.datetime],
    ) -> None:
        self._audit = audit
        self._record = record
        self._metrics = metrics
        self._sessions = sessions
        self._clock = clock

    def reap_expired(self) -> int:
        """Close blinded comparisons whose second step never came; returns how many."""
        return self._abandon(
            self._sessions.expired(), "finalized outputs never arrived within the session lifetime"
        )

    def abandon_all(self) -> int:
        """At a graceful stop, after in-flight RPCs finished: close every open comparison."""
        return self._abandon(
            self._sessions.all(), "the node stopped before the finalized outputs arrived"
        )

    def reconcile(self, older_than: float) -> int:
        """Close comparisons opened more than ``older_than`` seconds ago that no process closed."""
        before = self._clock() - _dt.timedelta(seconds=older_than)
        closed = reconcile(self._audit, before, open_here=self._sessions)
        if closed:
            _log.warning("closed %d blinded comparisons left open in the audit log", closed)
        return closed

    def _abandon(self, sessions: Mapping[str, Session], reason: str) -> int:
        closed = 0
        for cid, session in sessions.items():
            request = session.request
            entry = self._record.entry(
                request, outcome=Outcome.ABANDONED, status=ABANDONED_STATUS, message=reason
            )
            try:
                wrote = close(self._audit, entry)
            except errors.AuditUnavailableError:
                self._metrics.record_audit_failure()
                raise
            self._sessions.forget(cid)
            if wrote:
                closed += 1
                self._metrics.record_comparison(
                    requester=request.caller.department,
                    resource=request.header.resource_id,
                    mode=Mode.BLINDED,
                    outcome=Outcome.ABANDONED,
                    items=request.records,
                    matches=0,
                )
        return closed
