"""The audit records of the request path, written fail closed (articles 34, 35).

``ComparisonAudit`` turns a ``ComparisonRequest`` and how it ended into an ``AuditEntry`` and
commits it through the store gate: within the gate's deadline, or the request is refused
UNAVAILABLE and nothing is answered. A record that releases an answer and commits only after the
deadline (the requester was already answered UNAVAILABLE) is followed by a record saying the
answer was withheld. Refusals are audited and counted here too (``refuse``).
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Container
from dataclasses import replace
from typing import NoReturn

from sqlalchemy.orm import Session

from provider_node.audit.log import AuditLog
from provider_node.audit.records import AuditEntry
from provider_node.comparison.answers import audit_reason
from provider_node.comparison.checks import MAX_PURPOSE_CHARS
from provider_node.comparison.open_comparisons import recorded
from provider_node.comparison.refusal_tally import RefusalTally
from provider_node.comparison.request import ComparisonRequest
from provider_node.core import errors
from provider_node.core.vocabulary import Action, Outcome
from provider_node.observability.metrics import NodeMetrics
from provider_node.observability.oplog import ThrottledWarning
from provider_node.store.gate import StoreBusyError, StoreGate, StoreTimeoutError

__all__ = ["ComparisonAudit"]

_log = logging.getLogger(__name__)
# Bound on a refusal message in the audit record (it may echo requester-supplied names).
_MAX_MESSAGE = 300


class ComparisonAudit:
    """Builds and commits the request path's audit records; thread-safe."""

    def __init__(
        self,
        audit: AuditLog,
        metrics: NodeMetrics,
        gate: StoreGate,
        monotonic: Callable[[], float],
        resources: Container[str],
        refusals: RefusalTally,
    ) -> None:
        self._audit = audit
        self.refusals = refusals
        self._metrics = metrics
        self._gate = gate
        self._monotonic = monotonic
        self._resources = resources
        self._store_trouble = ThrottledWarning(_log)
        # Answers whose record's write failed or ended late: it may have committed all the same.
        self._in_doubt: dict[str, AuditEntry] = {}
        self._doubt_lock = threading.Lock()

    def entry(
        self,
        request: ComparisonRequest,
        *,
        outcome: str = Outcome.ANSWERED,
        status: str = "OK",
        match_count: int = 0,
        summary: str = "",
        message: str = "",
        related_id: str = "",
    ) -> AuditEntry:
        """The record of ``request``; its reason states a verification's or count's answer
        (``answers.audit_reason``) before ``summary`` and ``message``."""
        header = request.header
        return AuditEntry(
            action=str(request.action),
            requester=request.caller.department,
            cert_fingerprint=request.caller.cert_fingerprint,
            cert_serial=request.caller.cert_serial,
            grant_id=request.grant_id,
            related_id=related_id,
            resource_id=header.resource_id[:64],
            comparison_key=header.comparison_key[:64],
            mode=str(request.mode),
            purpose=header.purpose[:MAX_PURPOSE_CHARS],
            item_count=request.records,
            match_count=match_count,
            outcome=str(outcome),
            status_code=status,
            reason=audit_reason(header, summary=summary, message=message),
            request_id=header.request_id[:64],
            duration_ms=(self._monotonic() - request.started) * 1000.0,
            payload_sha256=request.payload_sha256,
            comparison_id=request.comparison_id or str(uuid.uuid4()),
        )

    def refuse(self, request: ComparisonRequest, refusal: errors.NodeError) -> None:
        """Count and audit ``request``, refused (or failed) with ``refusal``: the one place a
        refusal on the request path becomes its metrics and its audit record.

        A request refused because the store cannot be written is not audited: its record could
        not be written either (and would cost the requester the store's deadline a second time);
        nothing was answered, and the failure is counted and in the operations log. Refusals that
        follow one of the same source and kind within the refusal window are counted into one
        record (``RefusalTally``).
        """
        self._metrics.record_refusal(refusal.reason)
        # Only known resources become label values: the label set stays bounded.
        resource_id = request.header.resource_id
        if request.action == Action.COMPARISON and resource_id in self._resources:
            self._metrics.record_comparison(
                requester=request.caller.department,
                resource=resource_id,
                mode=request.mode,
                outcome=refusal.outcome,
                items=request.records,
                matches=0,
            )
        if isinstance(refusal, errors.AuditUnavailableError):
            return
        if not request.grant_id:
            request.grant_id = getattr(refusal, "grant_id", "")
        message = str(refusal)[:_MAX_MESSAGE]
        entry = self.entry(request, outcome=refusal.outcome, status=refusal.status, message=message)
        # One source's repeated refusals cost one write per window, not one each (refusal_tally).
        if self.refusals.counted(entry, message):
            return
        try:
            self.append(entry)
        except errors.AuditUnavailableError:
            self.refusals.lost(entry)
            raise

    def append(
        self,
        entry: AuditEntry,
        *,
        answers: bool = False,
        also: Callable[[Session], None] | None = None,
    ) -> None:
        """Commit ``entry`` within the store gate's deadline, or fail closed (UNAVAILABLE).

        ``also`` runs first in the same transaction (the request's allowance charge); a refusal
        it raises (``QuotaExceededError``) propagates as it is, and nothing is committed.
        ``answers``: the record releases an answer. If the write fails or ends after the deadline
        (the requester got UNAVAILABLE), the record may exist all the same (a commit whose
        acknowledgment was lost): it is in doubt until ``resolve_in_doubt`` finds out, and if it
        exists a follow-up record says the answer was withheld.
        """
        on_late = (lambda: self._doubt(entry)) if answers else None

        def record(session: Session) -> AuditEntry:
            if also is not None:
                also(session)
            return entry

        try:
            self._gate.run(
                lambda: self._audit.append_grouped(record), owner=entry.requester, on_late=on_late
            )
        except errors.NodeError as refusal:
            if not isinstance(refusal, errors.AuditUnavailableError):
                raise  # refused by ``also``: rolled back, nothing was written
            self._failed(refusal, entry, answers)
        except Exception as failure:  # the store's own errors too: fail closed all the same
            self._failed(failure, entry, answers)

    def _failed(self, failure: Exception, entry: AuditEntry, answers: bool) -> NoReturn:
        if answers and not isinstance(failure, StoreBusyError | StoreTimeoutError):
            self._doubt(entry)  # the write ended in an error: it may have committed
        self._metrics.record_audit_failure()
        detail = getattr(failure, "detail", None) or str(failure)
        self._store_trouble.warn(f"audit log not writable, requests refused: {detail}")
        if isinstance(failure, errors.AuditUnavailableError):
            raise failure
        raise errors.AuditUnavailableError(
            "the audit log cannot be written, so no comparison is answered (article 35); "
            "retry later"
        ) from failure

    def _doubt(self, entry: AuditEntry) -> None:
        with self._doubt_lock:
            self._in_doubt[entry.comparison_id] = entry

    def resolve_in_doubt(self) -> int:
        """For each answer whose record's write failed or ended late: if the record exists after
        all, record that the answer was withheld. Returns how many; raises while the store is down
        (the reaper tries again)."""
        with self._doubt_lock:
            pending = list(self._in_doubt.values())
        withheld = 0
        for entry in pending:

            def act(session: Session, entry: AuditEntry = entry) -> AuditEntry | None:
                if not recorded(session, entry.comparison_id):
                    return None  # never committed: nothing was answered, nothing to say
                withheld = _withheld(entry)
                return None if recorded(session, withheld.comparison_id) else withheld

            if self._audit.append_unless(act) is not None:
                withheld += 1
            with self._doubt_lock:
                self._in_doubt.pop(entry.comparison_id, None)
        return withheld


def _withheld(answered: AuditEntry) -> AuditEntry:
    return replace(
        answered,
        outcome=str(Outcome.FAILED),
        status_code="UNAVAILABLE",
        reason=(
            "answer withheld: the write of its record failed or ended after the node's "
            "deadline, and the requester was answered UNAVAILABLE"
        ),
        match_count=0,
        related_id=answered.comparison_id,
        # Derived from the answer's id: written at most once, however often it is resolved.
        comparison_id=str(uuid.uuid5(_WITHHELD, answered.comparison_id)),
    )


_WITHHELD = uuid.UUID("6b1f0c2e-8f0a-4f58-9a55-bd1d6f2c0a11")  # namespace of withheld records
