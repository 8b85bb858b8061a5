"""A rolling restart as the SDK sees it: ``ComparisonClient``s comparing in a loop (hashed and
blinded) while the node process is SIGTERMed and a new one started on the same port.

What must hold: no comparison fails (the SDK retries UNAVAILABLE within its deadline, a blinded
attempt from BlindEvaluate again); both node processes exit 0; and the audit log agrees with
what the clients received: each comparison id an SDK result carries is one answered record, and
every attempt the restart cut off is closed (abandoned by the stopping node), never answered.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from client_sdk import ComparisonClient, Credentials
from tests.faults.accounting import Finding, audit_log, check_agreement, unclosed_openings
from tests.faults.load import Ledger, Load, sdk_compare, show
from tests.faults.node_process import NodeDir, NodeProcess, make_node_dir
from tests.faults.throwaway_postgres import ThrowawayPostgres, free_port

pytestmark = [pytest.mark.faults, pytest.mark.timeout(120)]

SDK_TIMEOUT = 45.0
WORKERS = ("sdk-hashed", "sdk-blinded")


@pytest.fixture
def node_dir(postgres: ThrowawayPostgres, tmp_path: Path) -> NodeDir:
    return make_node_dir(tmp_path / "node", postgres.create_database("rolling"))


def test_rolling_restart_costs_the_sdk_no_comparison_and_the_log_agrees(
    node_dir: NodeDir, processes: list[NodeProcess]
) -> None:
    port = free_port()
    first = NodeProcess(node_dir, port, "first")
    processes.append(first)
    first.start()
    credentials = Credentials.from_files(
        node_dir.ca_cert, node_dir.client_cert, node_dir.client_key
    )
    present = [r[0] for r in node_dir.residents[:10]]
    absent = [r[0] for r in node_dir.absent[:3]]
    ledger, load = Ledger(), Load()
    clients = {
        mode: ComparisonClient(first.target, credentials, timeout=SDK_TIMEOUT)
        for mode in ("hashed", "blinded")
    }
    for mode, client in clients.items():
        load.run(
            f"sdk-{mode}",
            lambda c=client, m=mode: sdk_compare(c, ledger, f"sdk-{m}", present, absent, mode=m),
        )
    try:
        time.sleep(2.0)
        terminated_at = time.monotonic()
        first_status = first.terminate()
        down_at = time.monotonic()
        second = NodeProcess(node_dir, port, "second")
        processes.append(second)
        second.start()
        up_at = time.monotonic()
        # Until each client has finished a comparison it started on the new node.
        while time.monotonic() < up_at + SDK_TIMEOUT and not all(
            any(r.worker == worker and r.started > up_at for r in ledger.rpcs) for worker in WORKERS
        ):
            time.sleep(0.2)
    finally:
        load.stop(timeout=SDK_TIMEOUT + 10)
        for client in clients.values():
            client.close()
    assert not load.errors, load.errors[0]
    second_status = second.terminate()
    assert (first_status, second_status) == (0, 0), (first.output(), second.output())

    calls = ledger.rpcs
    failed = [r for r in calls if not r.ok]
    timeline = (
        f"SIGTERM at 0, exited +{down_at - terminated_at:.2f} s, new node serving "
        f"+{up_at - terminated_at:.2f} s: "
    )
    # The failure seen before the SDK retried it: CANCELLED with no details, or with the bare
    # status name as details (client_sdk/connection_failures.py), as the node stops.
    cancelled = [
        r
        for r in failed
        if r.code == "CANCELLED"
        and r.details.endswith(": CANCELLED')")
        and terminated_at - 0.5 <= r.ended <= down_at
    ]
    others = [r for r in failed if r not in cancelled]
    assert not others, timeline + show(others, terminated_at)
    back: dict[str, float] = {}
    for worker in WORKERS:
        mine = [r for r in calls if r.worker == worker]
        across = [r for r in mine if terminated_at <= r.ended and r.started < up_at]
        assert any(r.ended > up_at for r in across), f"{worker}: no comparison rode the restart"
        assert any(r.started > up_at for r in mine), (
            f"{worker}: nothing after the restart; "
            + show([r for r in mine if r.ended > terminated_at], up_at)
        )
        back[worker] = min(r.ended for r in mine if r.ended > up_at) - up_at
    rode = [r for r in calls if r.started < up_at < r.ended]

    records, chain = audit_log(node_dir.audit_url)
    assert not unclosed_openings(records), unclosed_openings(records)
    agreement = check_agreement(records, chain, ledger)
    assert agreement.withheld == 0
    if cancelled:
        raise Finding(
            f"{len(cancelled)} SDK comparison(s) failed in a rolling restart: {timeline}"
            + show(cancelled, terminated_at)
        )
    print(
        f"\nrolling restart: SIGTERM to exit {down_at - terminated_at:.1f} s, new node serving "
        f"{up_at - down_at:.1f} s later; {len(calls)} SDK comparisons "
        f"({sum(r.worker == 'sdk-hashed' for r in calls)} hashed, "
        f"{sum(r.worker == 'sdk-blinded' for r in calls)} blinded), none failed; {len(rode)} "
        f"rode the restart (longest {max(r.seconds for r in calls):.1f} s); first answer "
        f"after the new node served: hashed {back['sdk-hashed']:.1f} s, blinded "
        f"{back['sdk-blinded']:.1f} s\n"
        f"  {agreement.summary()}"
    )
