"""The request path waits on the store at most a deadline, and never queues behind a hung one."""

from __future__ import annotations

import threading
import time

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
    with pytest.raises(AuditUnavailableError, match="every connection to it is waiting"):
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
