"""The request path waits on the store at most a deadline, queues fairly between departments
when the store is busy, and never queues behind a hung one."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable

import pytest

from provider_node.core.errors import AuditUnavailableError, InvalidRequestError
from provider_node.store.gate import StoreGate


def test_results_and_errors_pass_through() -> None:
    gate = StoreGate(workers=2, deadline=2.0)
    assert gate.run(lambda: 42) == 42
    with pytest.raises(InvalidRequestError, match="mine"):
        gate.run(lambda: (_ for _ in ()).throw(InvalidRequestError("mine")))
    gate.shutdown()


def test_a_hung_store_costs_the_deadline_then_late_results_are_reported() -> None:
    gate = StoreGate(workers=2, deadline=0.2)
    release = threading.Event()
    late: list[str] = []
    started = time.monotonic()
    with pytest.raises(AuditUnavailableError, match="did not answer within"):
        gate.run(lambda: release.wait(5) and "committed", on_late=lambda: late.append("ended"))
    assert time.monotonic() - started < 1.0
    release.set()
    for _ in range(50):
        if late:
            break
        time.sleep(0.02)
    assert late == ["ended"]  # the write finished after all: the node is told
    gate.shutdown()


def test_no_queue_behind_a_store_that_holds_every_slot() -> None:
    gate = StoreGate(workers=1, deadline=0.1)
    release = threading.Event()
    with pytest.raises(AuditUnavailableError):
        gate.run(lambda: release.wait(5))
    started = time.monotonic()
    with pytest.raises(AuditUnavailableError, match="database is not answering"):
        gate.run(lambda: 1)
    assert time.monotonic() - started < 0.05  # refused at once, not after another deadline
    release.set()
    for _ in range(50):  # the slot comes back once the stuck work ends
        try:
            assert gate.run(lambda: 2) == 2
            break
        except AuditUnavailableError:
            time.sleep(0.02)
    else:
        pytest.fail("the gate never freed its slot")
    gate.shutdown()


def test_no_queue_behind_a_store_where_nothing_ends_for_a_deadline() -> None:
    # A frozen store with few requests holds a few slots, not all of them.
    clock = [0.0]
    gate = StoreGate(workers=8, deadline=0.2, monotonic=lambda: clock[0])
    release = threading.Event()
    with pytest.raises(AuditUnavailableError):
        gate.run(lambda: release.wait(5))  # the deadline passes on the real clock
    assert gate.run(lambda: 1) == 1  # work ended just now: the store answers others
    clock[0] += 0.2  # a whole deadline with one piece stuck and nothing ending
    with pytest.raises(AuditUnavailableError, match="database is not answering"):
        gate.run(lambda: 2)
    release.set()
    for _ in range(50):  # the stuck work ends: the store answers again
        try:
            assert gate.run(lambda: 3) == 3
            break
        except AuditUnavailableError:
            time.sleep(0.02)
    else:
        pytest.fail("the gate never took the store back")
    gate.shutdown()


def test_busy_slots_queue_instead_of_refusing() -> None:
    gate = StoreGate(workers=2, deadline=5.0)
    answers: list[int] = []
    threads = [
        threading.Thread(target=lambda i=i: answers.append(gate.run(lambda: time.sleep(0.05) or i)))
        for i in range(20)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(answers) == list(range(20))  # twenty on two slots: every one answered
    gate.shutdown()


def test_slots_are_handed_out_in_turn_between_owners() -> None:
    gate = StoreGate(workers=1, deadline=5.0)
    release = threading.Event()
    order: list[str] = []
    hold = threading.Thread(target=lambda: gate.run(lambda: release.wait(5), owner="a"))
    hold.start()
    while not _busy(gate):
        time.sleep(0.005)
    flood = [
        threading.Thread(target=lambda: gate.run(lambda: order.append("a"), owner="a"))
        for _ in range(5)
    ]
    for thread in flood:
        thread.start()
    while gate.waiting < 5:
        time.sleep(0.005)
    other = threading.Thread(target=lambda: gate.run(lambda: order.append("b"), owner="b"))
    other.start()
    while gate.waiting < 6:
        time.sleep(0.005)
    release.set()
    for thread in [hold, *flood, other]:
        thread.join()
    # b arrived behind five of a's, and is served after at most one of them.
    assert order.index("b") <= 1, order
    gate.shutdown()


def test_an_owner_cannot_queue_without_bound() -> None:
    gate = StoreGate(workers=1, deadline=2.0, max_waiting_per_owner=2)
    release = threading.Event()
    hold = threading.Thread(target=lambda: gate.run(lambda: release.wait(5), owner="a"))
    hold.start()
    while not _busy(gate):
        time.sleep(0.005)
    waiters = [threading.Thread(target=lambda: gate.run(lambda: 1, owner="a")) for _ in range(2)]
    for thread in waiters:
        thread.start()
    while gate.waiting < 2:
        time.sleep(0.005)
    with pytest.raises(AuditUnavailableError, match="already wait"):
        gate.run(lambda: 1, owner="a")
    release.set()
    assert gate.run(lambda: 3, owner="b") == 3  # another owner is not refused for a's queue
    for thread in [hold, *waiters]:
        thread.join()
    gate.shutdown()


def test_a_wait_for_a_slot_counts_against_the_deadline() -> None:
    gate = StoreGate(workers=1, deadline=0.3)
    release = threading.Event()
    hold = threading.Thread(target=lambda: _ignore(lambda: gate.run(lambda: release.wait(5))))
    hold.start()
    while not _busy(gate):
        time.sleep(0.005)
    started = time.monotonic()
    with pytest.raises(AuditUnavailableError):
        gate.run(lambda: 1, owner="b")
    assert time.monotonic() - started < 0.6  # the deadline once, not once to wait and once to run
    release.set()
    hold.join()
    gate.shutdown()


def _busy(gate: StoreGate) -> bool:
    return gate.in_use == 1


def _ignore(call: Callable[[], object]) -> None:
    with contextlib.suppress(AuditUnavailableError):
        call()
