"""Count what clients received against what the audit log holds; the two must agree (issue 8).

Read the log the way a compliance officer does (``AuditLog.export`` and ``verify``, from a process
of its own connection), then check, with a message naming the comparison when one fails:

1. every answer a client received has exactly one ``answered`` record under its comparison id,
   of the client's own request, and no ``withheld`` follow-up;
2. every ``answered`` comparison record whose client got no answer has exactly one withheld
   follow-up (outcome failed, related_id = the comparison id) — except where the caller names
   an instant (``cut``) when the commit itself was cut off: the node killed -9 (nothing survives
   to write the follow-up), or the database stopped mid-commit (the commit became durable but
   its acknowledgment never reached the node, see test_stopped_store). Such a record is counted
   ``in_doubt`` only if its client's own call failed across that instant, and at most
   ``max_in_doubt`` of them;
3. every withheld follow-up follows an ``answered`` record, at most one per comparison;
4. every ``opened`` record has exactly one closing record (answered, refused, failed or
   abandoned) under the comparison id it names;
5. every blinded evaluation a client received has its ``opened`` record;
6. every comparison record belongs to a request some client made;
7. the hash chain verifies.
"""

from __future__ import annotations

import io
import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from provider_node.audit.log import AuditLog
from provider_node.audit.records import ChainReport
from provider_node.store.engine import make_engine, session_factory
from tests.faults.load import Ledger

__all__ = ["Agreement", "Finding", "audit_log", "check_agreement", "unclosed_openings"]

CLOSING = frozenset({"answered", "refused", "failed", "abandoned"})


class Finding(AssertionError):
    """The failure a strict xfail test expects (``raises=Finding``): any other failure of that
    test, a broken precondition say, fails it outright instead of passing as expected."""


def audit_log(url: str) -> tuple[list[dict[str, Any]], ChainReport]:
    """Every record of the audit log at ``url`` in seq order, and the chain's verification."""
    engine = make_engine(url)
    try:
        log = AuditLog(session_factory(engine))
        out = io.StringIO()
        log.export(out, "jsonl")
        report = log.verify()
    finally:
        engine.dispose()
    return [json.loads(line) for line in out.getvalue().splitlines()], report


def is_withheld(record: dict[str, Any]) -> bool:
    """A follow-up saying an answer on record was never sent (outcome failed, related_id = the
    answered comparison's id); only openings and these carry a related_id."""
    return record["outcome"] == "failed" and bool(record["related_id"])


def unclosed_openings(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    closed = {r["comparison_id"] for r in records if r["outcome"] in CLOSING}
    return [r for r in records if r["outcome"] == "opened" and r["related_id"] not in closed]


@dataclass
class Agreement:
    """What the check counted (for the report)."""

    answers_received: int
    answered_records: int
    withheld: int
    opened: int
    abandoned: int
    refused_or_failed: int
    evaluations_received: int
    in_doubt: list[str] = field(default_factory=list)
    outcomes: Counter[str] = field(default_factory=Counter)

    def summary(self) -> str:
        return (
            f"{self.answers_received} answers received = {self.answered_records} answered "
            f"records - {self.withheld} withheld - {len(self.in_doubt)} in doubt (commit cut off); "
            f"{self.opened} opened ({self.evaluations_received} evaluations received), "
            f"{self.abandoned} abandoned, {self.refused_or_failed} refused/failed (outcomes: "
            f"{dict(self.outcomes)})"
        )


def check_agreement(
    records: list[dict[str, Any]],
    chain: ChainReport,
    ledger: Ledger,
    *,
    cut: tuple[float, float] | None = None,
    max_in_doubt: int = 0,
) -> Agreement:
    """Assert 1-7 above; ``cut`` is (from, to) on ``time.monotonic()``: when commits were cut off
    (a kill -9: (the kill, inf); an immediate stop: (pg_ctl stop, it returned))."""
    comparisons = [r for r in records if r["action"] == "comparison"]
    by_id = {r["comparison_id"]: r for r in records}
    withheld: defaultdict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in comparisons:
        if is_withheld(record):
            withheld[record["related_id"]].append(record)
    received = ledger.answered_ids()
    answer_calls = {c: r for r in ledger.answers() for c in r.comparison_ids}

    # 1. every answer received is on record, once, as answered, and not withheld
    for cid in sorted(received):
        record = by_id.get(cid)
        assert record is not None, f"answer {cid} reached a client but has no audit record"
        assert (record["action"], record["outcome"]) == ("comparison", "answered"), record
        assert record["request_id"] == answer_calls[cid].request_id, (record, answer_calls[cid])
        assert not withheld.get(cid), (
            f"answer {cid} reached a client but the log says it was withheld: {withheld[cid]}"
        )

    # 2. every answered record without a received answer is followed by a withheld record
    failures_by_request: defaultdict[str, list[Any]] = defaultdict(list)
    for rpc in ledger.failures():
        failures_by_request[rpc.request_id].append(rpc)
    answered = [r for r in comparisons if r["outcome"] == "answered"]
    lost: list[str] = []
    for record in answered:
        cid = record["comparison_id"]
        if cid in received:
            continue
        follow_ups = withheld.get(cid, [])
        if len(follow_ups) == 1:
            continue
        assert not follow_ups, f"answered record {cid} has {len(follow_ups)} withheld follow-ups"
        cut_off = [
            rpc
            for rpc in failures_by_request.get(record["request_id"], [])
            if cut is not None and rpc.started <= cut[1] and rpc.ended >= cut[0]
        ]
        assert cut_off, (
            f"the log says comparison {cid} (request {record['request_id']}) was answered, its "
            f"client got no answer ({failures_by_request.get(record['request_id'])}), and there "
            "is no withheld follow-up"
        )
        lost.append(cid)
    assert len(lost) <= max_in_doubt, (
        f"{len(lost)} answered records whose clients got no answer, commits cut off: {lost}"
    )

    # 3. withheld follow-ups follow answered records, one each
    for cid, follow_ups in withheld.items():
        assert len(follow_ups) == 1, f"{len(follow_ups)} withheld records for {cid}"
        original = by_id.get(cid)
        assert original is not None and original["outcome"] == "answered", (cid, original)
        assert follow_ups[0]["seq"] > original["seq"]
        assert follow_ups[0]["request_id"] == original["request_id"]

    # 4. every opening is closed exactly once (comparison ids are unique in the table)
    openings = [r for r in comparisons if r["outcome"] == "opened"]
    ids = Counter(r["comparison_id"] for r in records)
    assert max(ids.values(), default=1) == 1, "a comparison id appears twice"
    for opening in openings:
        closing = by_id.get(opening["related_id"])
        assert closing is not None, f"opened comparison {opening['related_id']} never closed"
        assert closing["outcome"] in CLOSING, closing
        assert closing["seq"] > opening["seq"], (opening, closing)
        assert closing["request_id"] == opening["request_id"], (opening, closing)
    opened_ids = {r["related_id"] for r in openings}
    assert len(opened_ids) == len(openings), "two openings of one comparison"

    # 5. no evaluation left the node without its opening on record
    evaluated = ledger.evaluated_ids()
    missing = sorted(evaluated - opened_ids)
    assert not missing, f"blinded evaluations received without an opened record: {missing}"

    # 6. every comparison record is one of our requests
    # (a MatchBlinded naming a session the node no longer knows is refused under no request)
    ours = ledger.request_ids()
    strangers = [
        r
        for r in comparisons
        if r["request_id"] not in ours and not (r["request_id"] == "" and r["outcome"] == "refused")
    ]
    assert not strangers, f"records of requests no client made: {strangers[:3]}"

    # 7. the chain
    assert chain.ok, chain
    assert chain.records_checked == len(records)

    return Agreement(
        answers_received=len(received),
        answered_records=len(answered),
        withheld=sum(len(v) for v in withheld.values()),
        opened=len(openings),
        abandoned=sum(r["outcome"] == "abandoned" for r in comparisons),
        refused_or_failed=sum(
            r["outcome"] in ("refused", "failed") and not is_withheld(r) for r in comparisons
        ),
        evaluations_received=len(evaluated),
        in_doubt=lost,
        outcomes=Counter(r["outcome"] for r in comparisons),
    )
