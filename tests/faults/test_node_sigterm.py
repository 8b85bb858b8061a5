"""SIGTERM to ``bidui provider serve`` under concurrent comparisons.

What must hold: the node exits 0; comparisons in flight when the signal came finish and are
answered; blinded comparisons whose second step never came (clients that did step 1 only, or
whose step 2 found the node stopping) are recorded ``abandoned`` by the stopping node before it
exits; the port is free afterwards; no record says answered for an answer no client received.

To have comparisons certainly in flight at the signal, the node's PostgreSQL is frozen (SIGSTOP)
half a second before it and thawed a second after: every worker's comparison is then waiting on
its audit record while the node stops accepting.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults.accounting import audit_log, check_agreement, unclosed_openings
from tests.faults.load import Ledger, Load, RawRequester, requester_for, show
from tests.faults.node_process import NodeDir, NodeProcess, make_node_dir, port_is_free
from tests.faults.throwaway_postgres import ThrowawayPostgres, free_port

pytestmark = [pytest.mark.faults, pytest.mark.timeout(120)]

HASHED_WORKERS = 3
BLINDED_WORKERS = 3
HOLDERS = 3
STOPPED_WORDS = "the node stopped before the finalized outputs arrived"


@pytest.fixture
def node_dir(postgres: ThrowawayPostgres, tmp_path: Path) -> NodeDir:
    return make_node_dir(tmp_path / "node", postgres.create_database("sigterm"))


@pytest.fixture
def node_process(node_dir: NodeDir, postgres: ThrowawayPostgres) -> Iterator[NodeProcess]:
    process = NodeProcess(node_dir, free_port(), "node")
    yield process
    postgres.ensure_running()
    process.close()


def test_sigterm_finishes_in_flight_comparisons_abandons_open_ones_and_exits_0(
    postgres: ThrowawayPostgres, node_dir: NodeDir, node_process: NodeProcess
) -> None:
    node_process.start()
    ledger, load = Ledger(), Load()
    requesters: list[RawRequester] = []
    for _ in range(HASHED_WORKERS + BLINDED_WORKERS + 1):
        requesters.append(requester_for(node_dir, node_process.target))
    holder = requesters.pop()
    held = [holder.blinded(ledger, "holder", finish=False) for _ in range(HOLDERS)]
    assert all(held), ledger.failures()
    for i in range(HASHED_WORKERS):
        load.run(f"hashed-{i}", lambda r=requesters[i], n=f"hashed-{i}": r.hashed(ledger, n))
    for i in range(HASHED_WORKERS, HASHED_WORKERS + BLINDED_WORKERS):
        load.run(f"blinded-{i}", lambda r=requesters[i], n=f"blinded-{i}": r.blinded(ledger, n))
    try:
        time.sleep(2.0)
        postgres.freeze()
        time.sleep(0.5)
        signalled_at = time.monotonic()
        node_process.signal(signal.SIGTERM)
        time.sleep(1.0)
        postgres.thaw()
        status = node_process.wait(60)
        exited_at = time.monotonic()
        time.sleep(0.3)
    finally:
        postgres.ensure_running()
        load.stop()
    assert not load.errors, load.errors[0]
    for requester in (*requesters, holder):
        requester.close()

    assert status == 0, node_process.output()
    assert "stopped" in node_process.output().splitlines()[-1], node_process.output()
    assert port_is_free(node_process.port)

    rpcs = ledger.rpcs
    in_flight = [r for r in rpcs if r.started < signalled_at < r.ended]
    assert len(in_flight) >= HASHED_WORKERS + BLINDED_WORKERS - 1, show(in_flight, signalled_at)
    assert all(r.ok for r in in_flight), show([r for r in in_flight if not r.ok], signalled_at)

    records, chain = audit_log(node_dir.audit_url)
    # Every comparison opened here was closed by this node before it exited: nobody else ran.
    assert not unclosed_openings(records), unclosed_openings(records)
    by_id = {r["comparison_id"]: r for r in records}
    for cid in held:
        record = by_id[cid]
        assert (record["outcome"], record["reason"]) == ("abandoned", STOPPED_WORDS), record
    abandoned = [r for r in records if r["outcome"] == "abandoned"]
    assert all(r["reason"] == STOPPED_WORDS for r in abandoned), abandoned
    # No record says answered for an answer a client did not get: not even a withheld one.
    answered = {r["comparison_id"] for r in records if r["outcome"] == "answered"}
    answered -= {r["comparison_id"] for r in records if r["action"] != "comparison"}
    assert answered == ledger.answered_ids(), answered ^ ledger.answered_ids()
    agreement = check_agreement(records, chain, ledger)
    assert agreement.withheld == 0
    methods = ", ".join(sorted({r.method for r in in_flight}))
    print(
        f"\nSIGTERM: exit 0 after {exited_at - signalled_at:.1f} s; {len(in_flight)} RPCs in "
        f"flight at the signal, all completed OK ({methods}); "
        f"{len(abandoned)} abandoned by the stopping node ({HOLDERS} held on purpose); "
        f"{len([r for r in rpcs if r.started > signalled_at and not r.ok])} later calls refused; "
        f"port free\n  {agreement.summary()}"
    )
