"""A bounded wait on the store for the request path: a hung database costs a requester seconds.

The engine's own timeouts (``engine.py``) cancel slow statements and lock waits, but a database
server that is frozen outright (SIGSTOP, a hung disk) answers nothing, cancels nothing, and would
hold every RPC worker that touches it while requests that need no database at all queue behind
them. ``StoreGate.run`` does store work on threads of its own and waits at most ``deadline``:

    RPC worker ──run(work)──> gate thread ──> database
        │  waits ≤ deadline        │ (may stay stuck until the database wakes)
        └─ UNAVAILABLE on time-out └─ when it finishes late: ``on_late`` (see below)

At most ``workers`` pieces of work wait on the store at once; beyond that a request is refused at
once rather than queued behind a store that is not answering.

A write that times out on the request path may still commit later, even one that ends in an
error (the commit reached the database, its acknowledgment did not). ``run(..., on_late=...)`` is
called once such late work has ended, whatever its end, so the node can find out whether the
record exists and, if so, record that its answer was never sent (the audit log must agree with
what requesters received).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import TypeVar

from provider_node.core.errors import AuditUnavailableError

__all__ = ["StoreBusyError", "StoreGate", "StoreTimeoutError"]

_T = TypeVar("_T")
_log = logging.getLogger(__name__)


class StoreBusyError(AuditUnavailableError):
    """Every gate thread waits on the store: the work was not started."""


class StoreTimeoutError(AuditUnavailableError):
    """The work did not end within the deadline; it goes on, and ``on_late`` says when it ends."""


class StoreGate:
    def __init__(self, *, workers: int = 8, deadline: float = 8.0) -> None:
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="bidui-store")
        self._slots = threading.BoundedSemaphore(workers)
        self.deadline = deadline

    def run(
        self,
        work: Callable[[], _T],
        *,
        on_late: Callable[[], None] | None = None,
    ) -> _T:
        """``work()`` on a gate thread; ``AuditUnavailableError`` if it takes over ``deadline``.

        Exceptions of ``work`` propagate unchanged.
        """
        if not self._slots.acquire(blocking=False):
            raise StoreBusyError(
                "the node's database is not answering (every connection to it is waiting), so "
                "no comparison is answered now; retry later"
            )
        future = self._pool.submit(work)
        future.add_done_callback(lambda _: self._slots.release())
        try:
            return future.result(timeout=self.deadline)
        except FutureTimeout:
            if on_late is not None:
                future.add_done_callback(lambda done: _late(done, on_late))
            raise StoreTimeoutError(
                f"the node's database did not answer within {self.deadline:.0f} s, so no "
                "comparison is answered now; retry later"
            ) from None

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def _late(done: Future[_T], on_late: Callable[[], None]) -> None:
    if done.cancelled():
        return  # never started: nothing was written
    try:
        on_late()
    except Exception:
        _log.exception("could not take note of a late store write")
