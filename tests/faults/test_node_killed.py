"""kill -9 of a node process under concurrent comparisons, then a new node on the same audit
database.

What must hold: comparisons the dead node left open (blinded step 1 done, step 2 never came) are
closed as ``abandoned`` by the new node before it serves (they are older than the session
lifetime, 2 s here); the new node answers; and the audit log agrees with what the clients
received — an answer whose record committed in the instant before the kill, and whose client saw
the node die, is the only kind of answered record without a received answer (nothing is left to
write a follow-up), at most one per call in flight.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.faults.accounting import audit_log, unclosed_openings
from tests.faults.load import (
    Ledger,
    Load,
    RawRequester,
    requester_for,
    show,
)
from tests.faults.node_process import NodeDir, NodeProcess, make_node_dir
from tests.faults.restart import agreement_after_kill, start_next_node
from tests.faults.throwaway_postgres import ThrowawayPostgres, free_port

pytestmark = [pytest.mark.faults, pytest.mark.timeout(120)]

SESSION_SECONDS = 2
HASHED_WORKERS = 3
BLINDED_WORKERS = 3
HOLDERS = 3


@pytest.fixture
def node_dir(postgres: ThrowawayPostgres, tmp_path: Path) -> NodeDir:
    url = postgres.create_database("killed")
    return make_node_dir(tmp_path / "node", url, session_seconds=SESSION_SECONDS)


def test_kill_9_leaves_open_comparisons_that_the_next_node_closes_and_the_log_agrees(
    node_dir: NodeDir, processes: list[NodeProcess]
) -> None:
    port = free_port()
    first = NodeProcess(node_dir, port, "first")
    processes.append(first)
    first.start()
    ledger, load = Ledger(), Load()
    requesters: list[RawRequester] = []
    for _ in range(HASHED_WORKERS + BLINDED_WORKERS + 1):
        requesters.append(requester_for(node_dir, first.target))
    holder = requesters.pop()
    for i in range(HASHED_WORKERS):
        load.run(f"hashed-{i}", lambda r=requesters[i], n=f"hashed-{i}": r.hashed(ledger, n))
    for i in range(HASHED_WORKERS, HASHED_WORKERS + BLINDED_WORKERS):
        load.run(f"blinded-{i}", lambda r=requesters[i], n=f"blinded-{i}": r.blinded(ledger, n))
    try:
        time.sleep(2.0)
        # Step 1 only, just before the kill: the first node's reaper cannot have closed them.
        held = [holder.blinded(ledger, "holder", finish=False) for _ in range(HOLDERS)]
        assert all(held), ledger.failures()
        crashed_at = time.monotonic()
        first.kill()
        time.sleep(0.5)
    finally:
        load.stop()
    assert not load.errors, load.errors[0]
    for requester in (*requesters, holder):
        requester.close()
    rpcs = ledger.rpcs
    in_flight = [r for r in rpcs if r.started < crashed_at <= r.ended]
    after_kill = [r for r in rpcs if r.started >= crashed_at]
    assert after_kill and all(r.code == "UNAVAILABLE" for r in after_kill), show(
        [r for r in after_kill if r.code != "UNAVAILABLE"], crashed_at
    )

    # Older than the session lifetime now: the next node closes them as it starts.
    time.sleep(SESSION_SECONDS + 1.0)
    left_open, _ = audit_log(node_dir.audit_url)
    left_open = unclosed_openings(left_open)
    left_ids = {r["related_id"] for r in left_open}
    assert set(held) <= left_ids, (held, left_ids)

    second, records, start_seconds = start_next_node(node_dir, port, processes)
    closing = {r["comparison_id"]: r for r in records if r["comparison_id"] in left_ids}
    assert set(closing) == left_ids
    for record in closing.values():
        assert record["outcome"] == "abandoned", record
        assert record["status_code"] == "DEADLINE_EXCEEDED", record
        assert "found open in the audit log" in record["reason"], record

    # The new node answers, both modes.
    agreement = agreement_after_kill(second, node_dir, ledger, crashed_at, len(in_flight), rounds=3)
    print(
        f"\nkill -9: {len(rpcs)} RPCs ({len(ledger.answers())} answered), {len(in_flight)} in "
        f"flight at the kill, {len(after_kill)} refused UNAVAILABLE after it; {len(left_open)} "
        f"comparisons left open ({HOLDERS} held on purpose), all closed as abandoned by the new "
        f"node before it served (started in {start_seconds:.1f} s)\n  {agreement.summary()}"
    )
