"""kill -9 of one worker of ``serve --workers 2`` under concurrent comparisons.

What must hold (issue 10: "a worker killed under load loses nothing"): the supervisor reports the
dead worker, stops the other one gracefully (its in-flight comparisons finish, each audited) and
exits 2; a new node on the same audit database closes the comparisons the dead worker left open as
``abandoned`` before it serves; the one audit chain verifies; and the log agrees with what the
clients received — the only answered records without a received answer are those whose commit
landed in the instant before the kill, at most one per call in flight then.
"""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path

import pytest

from tests.faults.load import Ledger, Load, RawRequester, requester_for
from tests.faults.node_process import NodeDir, NodeProcess, make_node_dir
from tests.faults.restart import agreement_after_kill, start_next_node
from tests.faults.throwaway_postgres import ThrowawayPostgres, free_port

pytestmark = [pytest.mark.faults, pytest.mark.timeout(150)]

SESSION_SECONDS = 2
REQUESTERS = 8  # each its own connection: the kernel spreads them over the two workers


@pytest.fixture
def node_dir(postgres: ThrowawayPostgres, tmp_path: Path) -> NodeDir:
    url = postgres.create_database("worker_killed")
    return make_node_dir(tmp_path / "node", url, session_seconds=SESSION_SECONDS)


def _worker_pids(node: NodeProcess) -> dict[int, int]:
    found = re.findall(r"worker (\d+) \(pid (\d+)\) serving", node.output())
    return {int(index): int(pid) for index, pid in found}


def test_a_worker_killed_under_load_loses_nothing(
    node_dir: NodeDir, processes: list[NodeProcess]
) -> None:
    port = free_port()
    first = NodeProcess(node_dir, port, "first", "--workers", "2")
    processes.append(first)
    first.start()
    deadline = time.monotonic() + 30
    while len(_worker_pids(first)) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    pids = _worker_pids(first)
    assert set(pids) == {0, 1}, first.output()

    ledger, load = Ledger(), Load()
    requesters: list[RawRequester] = [
        requester_for(node_dir, first.target) for _ in range(REQUESTERS)
    ]
    for i, requester in enumerate(requesters):
        name = f"{'hashed' if i % 2 else 'blinded'}-{i}"
        step = requester.hashed if i % 2 else requester.blinded
        load.run(name, lambda s=step, n=name: s(ledger, n))
    try:
        # Load first: until both workers have answered a few (a busy machine takes longer).
        warmed = time.monotonic() + 30.0
        time.sleep(2.5)
        while len(ledger.answers()) <= 20 and time.monotonic() < warmed:
            time.sleep(0.25)
        answered_before = len(ledger.answers())
        crashed_at = time.monotonic()
        os.kill(pids[1], signal.SIGKILL)
        code = first.wait(60)
    finally:
        load.stop()
    assert not load.errors, load.errors[0]
    for requester in requesters:
        requester.close()
    output = first.output()
    assert code == 2, output
    assert f"worker 1 (pid {pids[1]}) was killed by SIGKILL" in output, output
    assert "Traceback" not in output, output
    assert answered_before > 20, f"too little load before the kill: {answered_before} answers"
    rpcs = ledger.rpcs
    in_flight = [r for r in rpcs if r.started < crashed_at <= r.ended]

    # Older than the session lifetime now: the next node closes what the dead worker left open.
    time.sleep(SESSION_SECONDS + 1.0)
    second, _, _ = start_next_node(node_dir, port, processes)
    agreement = agreement_after_kill(second, node_dir, ledger, crashed_at, len(in_flight))
    print(
        f"\nworker kill -9: {len(rpcs)} RPCs ({len(ledger.answers())} answered), "
        f"{len(in_flight)} in flight at the kill; supervisor exited {code}\n"
        f"  {agreement.summary()}"
    )
