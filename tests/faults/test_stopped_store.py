"""A stopped store: the node's PostgreSQL shut down ``-m immediate`` (no checkpoint, connections
cut mid-transaction, crash recovery at the next start) under concurrent comparisons, then started.

What must hold: while it is down comparisons are answered UNAVAILABLE within the gate's deadline
and the catalog still answers; once it is back everything works again; no blinded evaluation
reached a client without its ``opened`` record committed; and the audit log agrees with what the
clients received (``accounting``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from client_sdk import ComparisonClient
from provider_node.store.gate import StoreGate
from tests.faults.accounting import Finding, audit_log, check_agreement, is_withheld
from tests.faults.load import Ledger, Load, requester_for, sdk_compare, show
from tests.faults.throwaway_postgres import ThrowawayPostgres
from tests.integration.conftest import NodeUnderTest, start

pytestmark = [pytest.mark.faults, pytest.mark.timeout(120)]

DOWN_SECONDS = 6.0
GATE_DEADLINE = StoreGate().deadline
SLACK = 1.5
HASHED_WORKERS = 3
BLINDED_WORKERS = 3


def test_stopped_store_refuses_fast_recovers_and_the_log_agrees_with_the_clients(
    postgres: ThrowawayPostgres, node: NodeUnderTest
) -> None:
    ledger, load = Ledger(), Load()
    requesters = [requester_for(node) for _ in range(HASHED_WORKERS + BLINDED_WORKERS + 1)]
    probe = requesters.pop()
    for i in range(HASHED_WORKERS):
        load.run(f"hashed-{i}", lambda r=requesters[i], n=f"hashed-{i}": r.hashed(ledger, n))
    for i in range(HASHED_WORKERS, HASHED_WORKERS + BLINDED_WORKERS):
        load.run(f"blinded-{i}", lambda r=requesters[i], n=f"blinded-{i}": r.blinded(ledger, n))
    sdk = ComparisonClient(node.target, node.credentials(), timeout=60.0)
    present = [r[0] for r in node.residents[20:30]]
    load.run("sdk", lambda: sdk_compare(sdk, ledger, "sdk", present, mode="hashed"))
    catalog_seconds: list[float] = []
    try:
        time.sleep(2.0)
        stopped_at = time.monotonic()
        postgres.stop("immediate")
        down_at = time.monotonic()
        while time.monotonic() < down_at + DOWN_SECONDS:
            catalog_seconds.append(probe.list_resources(timeout=5.0))
            time.sleep(0.25)
        restart_at = time.monotonic()
        postgres.start()
        up_at = time.monotonic()
        time.sleep(5.0)
    finally:
        postgres.ensure_running()
        load.stop()
        sdk.close()
    for requester in (*requesters, probe):
        requester.close()
    assert not load.errors, load.errors[0]
    rpcs = sorted((r for r in ledger.rpcs if r.method != "compare"), key=lambda r: r.started)

    assert len(catalog_seconds) >= 10 and max(catalog_seconds) < 1.0, catalog_seconds

    # Down: UNAVAILABLE, within the gate's deadline.
    while_down = [r for r in rpcs if down_at <= r.started and r.ended < restart_at]
    assert len(while_down) >= HASHED_WORKERS + BLINDED_WORKERS
    assert {r.code for r in while_down} == {"UNAVAILABLE"}, show(
        [r for r in while_down if r.code != "UNAVAILABLE"], stopped_at
    )
    waits = sorted(r.seconds for r in while_down)
    slow = [r for r in while_down if r.seconds > GATE_DEADLINE + SLACK]
    assert not slow, show(slow, stopped_at)
    cut = [r for r in rpcs if r.started < down_at and r.ended > stopped_at]

    # Back: everything works again.
    after = [r for r in rpcs if r.started >= up_at + 1.0]
    assert after and all(r.ok for r in after), show([r for r in after if not r.ok], up_at)
    for worker in {r.worker for r in rpcs}:
        assert any(r.worker == worker for r in after), f"{worker} made no call after the restart"
    sdk_calls = [r for r in ledger.rpcs if r.method == "compare"]
    assert sdk_calls and all(r.ok for r in sdk_calls), [r for r in sdk_calls if not r.ok]

    node.started.opened.node.reconcile_open_comparisons(0.0)
    records, chain = audit_log(node.started.opened.config.audit.database_url)
    # check_agreement also holds every BlindEvaluate comparison id a client received against
    # the opened records' related_id: no evaluation left without its opening committed.
    # A commit cut by the stop can be durable without the node hearing so: such an answered
    # record whose client got UNAVAILABLE is tolerated here (the finding is pinned down,
    # deterministically, by the xfail test below), at most one per call the stop cut.
    agreement = check_agreement(
        records, chain, ledger, cut=(stopped_at, down_at), max_in_doubt=len(cut)
    )
    evaluations = ledger.evaluated_ids()
    opened = {r["related_id"] for r in records if r["outcome"] == "opened"}
    assert evaluations and evaluations <= opened
    print(
        f"\nstopped store: pg_ctl stop -m immediate took {down_at - stopped_at:.2f} s, down "
        f"{up_at - down_at:.1f} s (start {up_at - restart_at:.2f} s); {len(rpcs)} RPCs, "
        f"{len(cut)} cut by the stop, {len(while_down)} refused UNAVAILABLE while down in "
        f"{waits[0]:.3f}-{waits[-1]:.3f} s (median {waits[len(waits) // 2]:.3f} s); "
        f"ListResources while down: max {max(catalog_seconds) * 1000:.0f} ms; "
        f"{len(evaluations)} evaluations received, each with its opening on record; SDK: "
        f"{len(sdk_calls)} hashed comparisons, none failed, slowest "
        f"{max(r.seconds for r in sdk_calls):.1f} s\n  {agreement.summary()}"
    )


@pytest.fixture
def node_without_allowance(
    postgres: ThrowawayPostgres, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[NodeUnderTest]:
    """A node whose hashed comparisons touch the store once: the answer's audit record (no
    per-minute allowance to count)."""
    monkeypatch.setenv("BIDUI_NODE_MAX_HASHED_ITEMS_PER_MINUTE", "0")
    running = start(tmp_path, audit_url=postgres.create_database("in_doubt"))
    yield running
    postgres.ensure_running()
    _admin(postgres, "ALTER SYSTEM RESET synchronous_standby_names")
    running.started.stop(grace=1.0)


def _admin(postgres: ThrowawayPostgres, *statements: str) -> None:
    engine = create_engine(postgres.url(), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            for statement in statements:
                connection.execute(text(statement))
            connection.execute(text("SELECT pg_reload_conf()"))
    finally:
        engine.dispose()


def test_an_answer_whose_commit_is_cut_off_is_not_on_record_as_answered(
    postgres: ThrowawayPostgres, node_without_allowance: NodeUnderTest
) -> None:
    node = node_without_allowance
    requester = requester_for(node)
    ledger = Ledger()
    try:
        assert requester.hashed(ledger, "warm-up")
        # Every commit from now on is written to the WAL, then waits for a standby that does not
        # exist: durable here, never acknowledged.
        _admin(postgres, "ALTER SYSTEM SET synchronous_standby_names = 'bidui_nobody'")
        outcome: list[bool] = []
        caller = threading.Thread(target=lambda: outcome.append(requester.hashed(ledger, "cut")))
        caller.start()
        time.sleep(2.0)  # the node's COMMIT of the answered record is waiting now
        postgres.stop("immediate")
        caller.join(GATE_DEADLINE + SLACK)
        postgres.start()  # crash recovery replays the commit from the WAL
        _admin(postgres, "ALTER SYSTEM RESET synchronous_standby_names")
    finally:
        requester.close()
    assert len(outcome) == 1
    call = ledger.rpcs[-1]
    # The answer is in doubt until the node's reaper (every 5 s) finds its record and says it was
    # withheld: give it a few rounds once the database is back.
    deadline = time.monotonic() + 30.0
    while True:
        records, chain = audit_log(node.started.opened.config.audit.database_url)
        mine = [r for r in records if r["request_id"] == call.request_id]
        answered = [r for r in mine if r["outcome"] == "answered"]
        assert len(answered) == 1, f"precondition: the cut-off commit is durable ({mine})"
        withheld = [
            r for r in records if is_withheld(r) and r["related_id"] == answered[0]["comparison_id"]
        ]
        if withheld or outcome[0] or time.monotonic() > deadline:
            break
        time.sleep(1.0)
    print(
        f"\ncommit cut off: the client got {call.code} after {call.seconds:.2f} s; the log holds "
        f"{[(r['outcome'], r['status_code']) for r in mine]} for its request"
    )
    if not outcome[0] and not withheld:
        raise Finding(
            f"the log says comparison {answered[0]['comparison_id']} was answered; its client "
            f"got {call.code} ({call.details!r}) and no withheld record follows"
        )
    check_agreement(records, chain, ledger)
