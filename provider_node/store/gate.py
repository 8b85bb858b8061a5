"""A bounded, fair wait on the store for the request path: a hung database costs a requester
seconds, and a busy one is shared between departments.

The engine's own timeouts (``engine.py``) cancel slow statements and lock waits, but a database
server that is frozen outright (SIGSTOP, a hung disk) answers nothing, cancels nothing, and would
hold every RPC worker that touches it while requests that need no database at all queue behind
them. ``StoreGate.run`` does store work on threads of its own and waits at most ``deadline``:

    RPC worker ──run(work, owner)──> gate thread ──> database
        │  waits ≤ deadline, queue included │ (may stay stuck until the database wakes)
        └─ UNAVAILABLE on time-out          └─ when it finishes late: ``on_late`` (see below)

At most ``workers`` pieces of work run on the store at once. Beyond that a request waits for a
slot, within its deadline: ordinary parallel work queues instead of failing. The wait is fair
between owners (the calling department): slots are handed out round-robin, one owner's queue at
a time, so a department with many requests in flight (or one flooding the node with refused
requests, each audited) delays another department by at most one slot's turn, and each owner may
have at most ``max_waiting_per_owner`` requests waiting. Work whose caller has already been
answered UNAVAILABLE and which still holds a slot is *stuck*: when every slot is stuck the store
is not answering, and a request is refused at once rather than queued behind it; so it is when
some work is stuck and none has ended for a whole deadline (a frozen store holds a few slots,
not all of them, when few requests come).

A write that times out on the request path may still commit later, even one that ends in an
error (the commit reached the database, its acknowledgment did not). ``run(..., on_late=...)`` is
called once such late work has ended, whatever its end, so the node can find out whether the
record exists and, if so, record that its answer was never sent (the audit log must agree with
what requesters received).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import TypeVar

from provider_node.core.errors import AuditUnavailableError

__all__ = ["StoreBusyError", "StoreGate", "StoreTimeoutError"]

_T = TypeVar("_T")
_log = logging.getLogger(__name__)


class StoreBusyError(AuditUnavailableError):
    """The work was not started: every slot is stuck on the store, or the owner's queue is full."""


class StoreTimeoutError(AuditUnavailableError):
    """The work did not end within the deadline (waiting for a slot included); work that started
    goes on, and ``on_late`` says when it ends."""


class _Ticket:
    """One request's place in its owner's queue."""

    __slots__ = ("granted",)

    def __init__(self) -> None:
        self.granted = False


class _Slot:
    """A slot held by one piece of work; ``stuck`` once its caller stopped waiting for it."""

    __slots__ = ("done", "stuck")

    def __init__(self) -> None:
        self.stuck = False
        self.done = False


class StoreGate:
    def __init__(
        self,
        *,
        workers: int = 32,
        deadline: float = 8.0,
        max_waiting_per_owner: int = 64,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="bidui-store")
        self._workers = workers
        self._free = workers
        self._stuck = 0
        self._max_waiting = max_waiting_per_owner
        # Waiting requests by owner, owners in the order their turn comes (round-robin).
        self._queues: OrderedDict[str, deque[_Ticket]] = OrderedDict()
        self._changed = threading.Condition()
        self._monotonic = monotonic
        self.deadline = deadline
        # When a piece of work last ended: a store where work is stuck and none has ended for a
        # whole deadline is not answering.
        self._last_done = monotonic()

    def run(
        self,
        work: Callable[[], _T],
        *,
        owner: str = "",
        on_late: Callable[[], None] | None = None,
    ) -> _T:
        """``work()`` on a gate thread, after a fair wait for a slot; ``AuditUnavailableError``
        if the wait and the work together take over ``deadline``.

        ``owner`` is who the work is for (the calling department; "" for callers not yet
        identified, who share one queue). Exceptions of ``work`` propagate unchanged.
        """
        ends = self._monotonic() + self.deadline
        self._take_slot(owner, ends)
        slot = _Slot()
        try:
            future = self._pool.submit(work)
        except BaseException:
            self._give_back(slot)
            raise
        future.add_done_callback(lambda _: self._give_back(slot))
        try:
            return future.result(timeout=max(0.0, ends - self._monotonic()))
        except FutureTimeout:
            with self._changed:
                if not slot.done:
                    slot.stuck = True
                    self._stuck += 1
            if on_late is not None:
                future.add_done_callback(lambda done: _late(done, on_late))
            raise StoreTimeoutError(
                f"the node's database did not answer within {self.deadline:.0f} s, so no "
                "comparison is answered now; retry later"
            ) from None

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    @property
    def in_use(self) -> int:
        """Slots held by work now (stuck work included)."""
        with self._changed:
            return self._workers - self._free

    @property
    def waiting(self) -> int:
        """Requests waiting for a slot now."""
        with self._changed:
            return sum(len(queue) for queue in self._queues.values())

    def _take_slot(self, owner: str, ends: float) -> None:
        with self._changed:
            self._refuse_if_hung()
            if self._free > 0 and not self._queues:
                self._free -= 1
                return
            queue = self._queues.setdefault(owner, deque())
            if len(queue) >= self._max_waiting:
                raise StoreBusyError(
                    f"{len(queue)} requests of yours already wait for the node's database, its "
                    "limit: wait for their answers before sending more"
                )
            ticket = _Ticket()
            queue.append(ticket)
            self._hand_out()
            while not ticket.granted:
                remaining = ends - self._monotonic()
                if remaining <= 0 or self._hung():
                    self._leave(owner, ticket)
                    self._refuse_if_hung()
                    raise StoreTimeoutError(
                        f"the node's database did not answer within {self.deadline:.0f} s, so "
                        "no comparison is answered now; retry later"
                    )
                self._changed.wait(remaining)

    def _give_back(self, slot: _Slot) -> None:
        with self._changed:
            if slot.done:
                return
            slot.done = True
            self._last_done = self._monotonic()
            if slot.stuck:
                self._stuck -= 1
            self._free += 1
            self._hand_out()  # wakes the waiters

    def _hand_out(self) -> None:
        """Free slots to waiting owners in turn, one request each (the lock is held)."""
        while self._free > 0 and self._queues:
            owner, queue = next(iter(self._queues.items()))
            queue.popleft().granted = True
            self._free -= 1
            if queue:
                self._queues.move_to_end(owner)  # its next request waits for the others' turn
            else:
                del self._queues[owner]
        self._changed.notify_all()

    def _leave(self, owner: str, ticket: _Ticket) -> None:
        queue = self._queues.get(owner)
        if queue is not None and ticket in queue:
            queue.remove(ticket)
            if not queue:
                del self._queues[owner]

    def _hung(self) -> bool:
        """Every slot is stuck, or some are and no work has ended for a whole deadline."""
        if self._stuck == 0:
            return False
        if self._free == 0 and self._stuck >= self._workers:
            return True
        return self._monotonic() - self._last_done >= self.deadline

    def _refuse_if_hung(self) -> None:
        if self._hung():
            raise StoreBusyError(
                "the node's database is not answering (work on it has stopped ending), so "
                "no comparison is answered now; retry later"
            )


def _late(done: Future[_T], on_late: Callable[[], None]) -> None:
    if done.cancelled():
        return  # never started: nothing was written
    try:
        on_late()
    except Exception:
        _log.exception("could not take note of a late store write")
