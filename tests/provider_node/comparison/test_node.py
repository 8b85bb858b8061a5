"""ProviderNode without gRPC: blinded sessions, their lifetime, and the audit of abandoned ones;
both RFC 9497 modes (modeOPRF by default, modeVOPRF when the header asks) and the refusal of a mode
the resource does not offer."""

from __future__ import annotations

from dataclasses import replace

import pytest
from sqlalchemy import text

from comparator.index import unpack_matches
from provider_node.audit.log import AuditLog
from provider_node.core import errors
from provider_node.core.vocabulary import OprfMode
from provider_node.identity.auth import Caller
from tests.provider_node.comparison.node_setup import (
    CALLER,
    HEADER,
    IDS,
    NodeSetup,
    blind,
    records,
)


def test_blinded_comparison_is_one_audit_record(setup: NodeSetup) -> None:
    node, _, audit, pk = setup
    client, blinded = blind(pk, [IDS[0], "110105194912310038", IDS[2]])
    opened = node.blind_evaluate(CALLER, HEADER, blinded.message)
    # The evaluations left only once the comparison was on record as opened.
    (opening,) = records(audit)
    assert (opening["outcome"], opening["related_id"]) == ("opened", opened.comparison_id)
    assert node.open_sessions == 1
    outputs = client.finalize(blinded.state, opened.evaluation)
    outcome = node.match_blinded(CALLER, opened.comparison_id, outputs)
    assert unpack_matches(outcome.match_bits, 3) == [True, False, True]
    _, record = records(audit)
    assert record["comparison_id"] == opened.comparison_id == outcome.comparison_id
    assert (record["outcome"], record["item_count"], record["match_count"]) == ("answered", 3, 2)
    assert node.open_sessions == 0


def test_verifiable_comparisons_carry_a_proof_and_match_their_own_index(setup: NodeSetup) -> None:
    node, _, audit, pk = setup
    header = replace(HEADER, verifiable=True)
    client, blinded = blind(pk, [IDS[0], "110105194912310038", IDS[2]], verifiable=True)
    opened = node.blind_evaluate(CALLER, header, blinded.message)
    assert opened.evaluation.proof is not None  # VoprfClient.finalize checks it
    outputs = client.finalize(blinded.state, opened.evaluation)
    outcome = node.match_blinded(CALLER, opened.comparison_id, outputs)
    assert unpack_matches(outcome.match_bits, 3) == [True, False, True]
    # modeOPRF: no proof, and its outputs (another key) are matched against the modeOPRF index.
    plain, blinded = blind(pk, [IDS[0], IDS[1]])
    opened = node.blind_evaluate(CALLER, HEADER, blinded.message)
    assert opened.evaluation.proof is None
    outputs = plain.finalize(blinded.state, opened.evaluation)
    assert node.match_blinded(CALLER, opened.comparison_id, outputs).match_count == 2
    assert [r["outcome"] for r in records(audit)] == ["opened", "answered"] * 2


def test_the_dleq_batch_limit_applies_to_voprf_only(
    setup: NodeSetup, monkeypatch: pytest.MonkeyPatch
) -> None:
    node, _, _, pk = setup
    monkeypatch.setattr("provider_node.comparison.node.MAX_VERIFIABLE_BATCH", 2)
    _, blinded = blind(pk, IDS)
    node.blind_evaluate(CALLER, HEADER, blinded.message)  # modeOPRF: up to max_batch_items
    _, blinded = blind(pk, IDS, verifiable=True)
    with pytest.raises(errors.BatchTooLargeError):
        node.blind_evaluate(CALLER, replace(HEADER, verifiable=True), blinded.message)


def test_a_mode_the_resource_does_not_offer_is_refused(setup: NodeSetup) -> None:
    node, _, audit, pk = setup
    served = node.resources["residents"]
    only_oprf = replace(served.resource, oprf_modes=(OprfMode.OPRF,))
    node.resources["residents"].resource = only_oprf  # type: ignore[misc]
    _, blinded = blind(pk, IDS[:1], verifiable=True)
    with pytest.raises(errors.ModeNotOfferedError, match=r"mode voprf \(offered: oprf\)") as info:
        node.blind_evaluate(CALLER, replace(HEADER, verifiable=True), blinded.message)
    assert (info.value.reason, info.value.status) == ("mode_not_offered", "FAILED_PRECONDITION")
    (record,) = records(audit)
    assert record["outcome"] == "refused" and "offered: oprf" in str(record)
    assert node.open_sessions == 0


def test_session_of_another_department_looks_missing(setup: NodeSetup) -> None:
    node, _, _, pk = setup
    client, blinded = blind(pk, [IDS[0]])
    opened = node.blind_evaluate(CALLER, HEADER, blinded.message)
    outputs = client.finalize(blinded.state, opened.evaluation)
    with pytest.raises(errors.SessionExpiredError):
        node.match_blinded(Caller("intruder", "cd" * 32), opened.comparison_id, outputs)
    # The rightful owner can still finish it.
    assert node.match_blinded(CALLER, opened.comparison_id, outputs).match_count == 1


def test_expired_session_is_refused_and_abandoned_ones_audited(setup: NodeSetup) -> None:
    node, clock, audit, pk = setup
    client, blinded = blind(pk, [IDS[0]])
    late = node.blind_evaluate(CALLER, HEADER, blinded.message)
    clock.now += 61
    with pytest.raises(errors.SessionExpiredError):
        node.match_blinded(
            CALLER, late.comparison_id, client.finalize(blinded.state, late.evaluation)
        )
    _, again = blind(pk, [IDS[1], IDS[2]])
    node.blind_evaluate(CALLER, HEADER, again.message)
    clock.now += 61
    assert node.reap_expired_sessions() == 1
    outcomes = [(r["outcome"], r["item_count"]) for r in records(audit)]
    assert outcomes == [("opened", 1), ("refused", 1), ("opened", 2), ("abandoned", 2)]
    assert node.open_sessions == 0


@pytest.mark.parametrize("setup", [4], indirect=True)
def test_items_per_minute_are_limited_per_department(setup: NodeSetup) -> None:
    node, clock, audit, pk = setup
    _, three = blind(pk, IDS)
    node.blind_evaluate(CALLER, HEADER, three.message)  # 3 of 4 used
    # Never into debt: a request that does not fit is refused whole, saying what is left.
    with pytest.raises(errors.QuotaExceededError, match="1 remain in this minute"):
        node.blind_evaluate(CALLER, HEADER, three.message)
    _, one = blind(pk, IDS[:1])
    node.blind_evaluate(CALLER, HEADER, one.message)  # exactly fills the minute
    # Another department has its own allowance.
    node.blind_evaluate(Caller("tax-bureau", "ef" * 32), HEADER, three.message)
    clock.now += 60  # the next minute
    node.blind_evaluate(Caller("tax-bureau", "ef" * 32), HEADER, three.message)
    refused = [r for r in records(audit) if r["outcome"] == "refused"]
    assert [(r["status_code"], r["requester"]) for r in refused] == [
        ("RESOURCE_EXHAUSTED", "civil-affairs")
    ]


def _break_store(audit: AuditLog) -> None:
    """The audit table is gone: every write fails, as with a store that is down."""
    with audit.sessions.begin() as session:
        session.execute(text("ALTER TABLE audit_record RENAME TO audit_record_away"))


def _mend_store(audit: AuditLog) -> None:
    with audit.sessions.begin() as session:
        session.execute(text("ALTER TABLE audit_record_away RENAME TO audit_record"))


def test_no_evaluation_leaves_when_the_opening_cannot_be_recorded(setup: NodeSetup) -> None:
    node, _, audit, pk = setup
    _, blinded = blind(pk, IDS[:1])
    _break_store(audit)
    with pytest.raises(errors.AuditUnavailableError):
        node.blind_evaluate(CALLER, HEADER, blinded.message)
    assert node.open_sessions == 0


def test_a_session_is_forgotten_only_once_its_abandonment_is_recorded(setup: NodeSetup) -> None:
    node, clock, audit, pk = setup
    _, blinded = blind(pk, IDS[:2])
    opened = node.blind_evaluate(CALLER, HEADER, blinded.message)
    clock.now += 61
    _break_store(audit)
    with pytest.raises(errors.AuditUnavailableError):
        node.reap_expired_sessions()
    assert node.open_sessions == 1  # kept: the store could not take the record
    _mend_store(audit)
    assert node.reap_expired_sessions() == 1
    closing = records(audit)[-1]
    assert (closing["comparison_id"], closing["outcome"]) == (opened.comparison_id, "abandoned")


def test_a_graceful_stop_records_open_sessions_as_abandoned(setup: NodeSetup) -> None:
    node, _, audit, pk = setup
    _, blinded = blind(pk, IDS[:1])
    first = node.blind_evaluate(CALLER, HEADER, blinded.message)
    second = node.blind_evaluate(Caller("tax-bureau", "ef" * 32), HEADER, blinded.message)
    assert node.abandon_open_sessions() == 2
    closed = {r["comparison_id"] for r in records(audit) if r["outcome"] == "abandoned"}
    assert closed == {first.comparison_id, second.comparison_id}


def test_comparisons_left_open_by_a_crashed_node_are_closed_once(setup: NodeSetup) -> None:
    node, _, audit, pk = setup
    _, blinded = blind(pk, IDS[:1])
    opened = node.blind_evaluate(CALLER, HEADER, blinded.message)
    # Another process on the same log (or this one after kill -9) sees the opening only.
    assert node.reconcile_open_comparisons(0.0) == 0  # still open here: not another's to close
    node._sessions.forget(opened.comparison_id)  # the process that held it is gone
    assert node.reconcile_open_comparisons(0.0) == 1
    assert node.reconcile_open_comparisons(0.0) == 0  # closed exactly once
    closing = records(audit)[-1]
    assert (closing["comparison_id"], closing["outcome"]) == (opened.comparison_id, "abandoned")
    assert closing["requester"] == CALLER.department


def test_open_sessions_are_capped_per_department(setup: NodeSetup) -> None:
    node, _, _, pk = setup
    _, one = blind(pk, IDS[:1])
    node.blind_evaluate(CALLER, HEADER, one.message)
    node.blind_evaluate(CALLER, HEADER, one.message)
    with pytest.raises(errors.TooManySessionsError, match="your department has 2"):
        node.blind_evaluate(CALLER, HEADER, one.message)
    # One department's full share never blocks another's.
    node.blind_evaluate(Caller("tax-bureau", "ef" * 32), HEADER, one.message)
    assert node.open_sessions == 3
