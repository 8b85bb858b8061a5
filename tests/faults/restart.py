"""After a kill -9: the next node on the same port, and what must hold once it has served.

``start_next_node`` starts it and reads the audit log before any request reaches it (whatever the
killed process left open must already be closed); ``agreement_after_kill`` has a fresh requester
get answers in both modes from it, stops it cleanly, and holds the whole log against what the
clients received, the calls in flight at the kill allowed to be in doubt.
"""

from __future__ import annotations

import math
from typing import Any

from tests.faults.accounting import Agreement, audit_log, check_agreement, unclosed_openings
from tests.faults.load import Ledger, answers_both_modes
from tests.faults.node_process import NodeDir, NodeProcess, port_is_free

__all__ = ["agreement_after_kill", "start_next_node"]


def start_next_node(
    node_dir: NodeDir, port: int, processes: list[NodeProcess]
) -> tuple[NodeProcess, list[dict[str, Any]], float]:
    """The new node (kept in ``processes``), the audit records as it found them, its start time."""
    node = NodeProcess(node_dir, port, "second")
    processes.append(node)
    seconds = node.start()
    records, _ = audit_log(node_dir.audit_url)  # before any request reaches the new node
    assert not unclosed_openings(records), unclosed_openings(records)
    return node, records, seconds


def agreement_after_kill(
    node: NodeProcess,
    node_dir: NodeDir,
    ledger: Ledger,
    crashed_at: float,
    in_flight: int,
    *,
    rounds: int = 1,
) -> Agreement:
    """``rounds`` answers per mode from ``node``, a clean stop that frees its port, then the log
    against ``ledger`` from ``crashed_at`` on, at most ``in_flight`` calls in doubt."""
    answers_both_modes(node_dir, node.target, ledger, rounds=rounds)
    assert node.terminate() == 0, node.output()
    assert port_is_free(node.port)
    records, chain = audit_log(node_dir.audit_url)
    return check_agreement(
        records, chain, ledger, cut=(crashed_at, math.inf), max_in_doubt=in_flight
    )
