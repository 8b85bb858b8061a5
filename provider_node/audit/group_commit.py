"""Group commit: the audit records of requests arriving together share one transaction.

Every answer waits for its own record to be committed (fail closed, article 35), and every commit
waits for the store to make it durable (an fsync on SQLite, a WAL flush on PostgreSQL). One
transaction per record caps the audit log, and with it the whole node, at about one commit time
per answer however many requests wait. So requests that arrive while a commit is under way queue
here, and the next commit takes all of them::

    request A ──┐ leads: one transaction ───────────> commit ─> A, B, C answered
    request B ──┤   A's, B's, C's records, each in a savepoint
    request C ──┘   (while D waits for the next group)

The first waiting request with no leader running leads: it commits the whole queue (at most
``max_group``) and wakes the others, one of whom leads the next group. Each request's work runs
in a savepoint of its own, so a refusal one of them raises (its allowance is spent, say) undoes
only its own change and reaches only its own caller; a store failure fails the whole group, and
the transaction is retried or every caller in it is told the store is unavailable. No answer
leaves before the transaction holding its record has committed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

__all__ = ["GroupCommitter"]

_T = TypeVar("_T")


class _Pending(Generic[_T]):
    """One request's work in the queue, and what came of it."""

    __slots__ = ("done", "error", "result", "work")

    def __init__(self, work: Callable[[Session], _T]) -> None:
        self.work = work
        self.done = False
        self.result: _T | None = None
        self.error: BaseException | None = None

    def outcome(self) -> _T:
        if self.error is not None:
            raise self.error
        return self.result  # type: ignore[return-value]


class GroupCommitter:
    """Runs each submitted piece of work in a shared transaction; thread-safe.

    ``transaction(work)`` runs ``work(session)`` in one transaction and commits it, retrying
    where the store says so, and raises the store's failure otherwise (``AuditLog``'s
    ``_with_retries``). ``max_group`` 1 gives every request its own transaction.
    """

    def __init__(
        self,
        transaction: Callable[[Callable[[Session], None]], None],
        *,
        max_group: int = 64,
    ) -> None:
        if max_group < 1:
            raise ValueError("a group holds at least one record")
        self.max_group = max_group
        self._transaction = transaction
        self._queue: list[_Pending[object]] = []
        self._leading = False
        self._changed = threading.Condition()

    def submit(self, work: Callable[[Session], _T]) -> _T:
        """What ``work`` returns, once the transaction it ran in has committed; its own
        exception if it raised one (its changes undone, the others' kept); the store's failure
        if the transaction could not commit."""
        item: _Pending[_T] = _Pending(work)
        with self._changed:
            self._queue.append(item)  # type: ignore[arg-type]
        while True:
            with self._changed:
                while not item.done and self._leading:
                    self._changed.wait()
                if item.done:
                    return item.outcome()
                self._leading = True
                group = self._queue[: self.max_group]
                del self._queue[: self.max_group]
            try:
                self._commit(group)
            finally:
                with self._changed:
                    self._leading = False
                    self._changed.notify_all()

    def _commit(self, group: list[_Pending[object]]) -> None:
        def run(session: Session) -> None:
            for item in group:  # a retry runs every piece of work afresh
                item.result, item.error = None, None
                try:
                    with session.begin_nested():
                        item.result = item.work(session)
                except SQLAlchemyError:
                    raise  # the store's trouble: the whole group is retried or fails
                except Exception as refusal:
                    item.error = refusal  # its savepoint is rolled back; the others go on

        try:
            self._transaction(run)
        except BaseException as failure:
            for item in group:
                item.result, item.error = None, failure
        finally:
            for item in group:
                item.done = True
