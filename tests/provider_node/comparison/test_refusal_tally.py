"""One source's repeated refusals become one record per window, and every refusal is counted."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from provider_node.core import errors
from provider_node.identity.auth import Caller
from tests.provider_node.comparison.node_setup import (
    CALLER,
    HEADER,
    IDS,
    NodeSetup,
    blind,
    node_setup,
    records,
)
from tests.provider_node.comparison.test_node import _break_store, _mend_store

OTHER = Caller("tax-bureau", "ef" * 32)
UNKNOWN = replace(HEADER, resource_id="nope")


def refuse(setup: NodeSetup, caller: Caller, times: int, header: object = UNKNOWN) -> None:
    _, blinded = blind(setup.public_key, IDS[:1])
    for _ in range(times):
        with pytest.raises(errors.UnknownResourceError):
            setup.node.blind_evaluate(caller, header, blinded.message)  # type: ignore[arg-type]


def refusals_on_record(setup: NodeSetup, requester: str) -> int:
    """What the log says ``requester`` was refused: one per refusal record, N per window record."""
    total = 0
    for record in records(setup.audit):
        if record["requester"] != requester:
            continue
        if record["action"] == "refusals":
            total += int(str(record["item_count"]))
        elif record["outcome"] == "refused":
            total += 1
    return total


def test_a_flood_of_refusals_is_one_record_then_one_count(tmp_path: Path) -> None:
    setup = node_setup(tmp_path)
    refuse(setup, CALLER, 50)
    # The first is recorded in full at once; the 49 after it cost no store work.
    (first,) = records(setup.audit)
    assert (first["outcome"], first["status_code"]) == ("refused", "NOT_FOUND")
    assert setup.node.refusals_pending == 49
    assert setup.node.record_refusals() == 0  # the window is still open
    setup.clock.now += 10
    assert setup.node.record_refusals() == 1
    first, window = records(setup.audit)
    assert (window["action"], window["outcome"], window["status_code"]) == (
        "refusals",
        "refused",
        "NOT_FOUND",
    )
    assert window["item_count"] == 49 and window["related_id"] == first["comparison_id"]
    assert (window["requester"], window["cert_fingerprint"]) == (
        CALLER.department,
        CALLER.cert_fingerprint,
    )
    assert "49 further NOT_FOUND refusals" in str(window["reason"])
    assert "no resource 'nope'" in str(window["reason"])
    assert refusals_on_record(setup, CALLER.department) == 50
    assert setup.node.refusals_pending == 0 and setup.node.record_refusals() == 0


def test_each_source_and_kind_has_its_own_window(tmp_path: Path) -> None:
    setup = node_setup(tmp_path)
    refuse(setup, CALLER, 3)
    refuse(setup, OTHER, 2)  # another department's first refusal is recorded in full
    with pytest.raises(errors.InvalidRequestError):  # another kind (status) of refusal
        setup.node.blind_evaluate(CALLER, replace(HEADER, verifiable=True), [b"\0" * 5])
    on_record = [(r["requester"], r["status_code"]) for r in records(setup.audit)]
    assert on_record == [
        ("civil-affairs", "NOT_FOUND"),
        ("tax-bureau", "NOT_FOUND"),
        ("civil-affairs", "INVALID_ARGUMENT"),
    ]
    assert setup.node.record_refusals(everything=True) == 2  # a graceful stop writes them all
    assert refusals_on_record(setup, CALLER.department) == 4
    assert refusals_on_record(setup, OTHER.department) == 2
    # After a window, the next refusal is recorded in full again.
    refuse(setup, CALLER, 1)
    assert records(setup.audit)[-1]["action"] == "comparison"


def test_a_refusal_closing_an_opened_comparison_always_has_its_own_record(
    tmp_path: Path,
) -> None:
    setup = node_setup(tmp_path)
    refuse(setup, CALLER, 2)
    _, blinded = blind(setup.public_key, IDS[:1])
    opened = setup.node.blind_evaluate(CALLER, HEADER, blinded.message)
    wrong = [b"\0" * 64, b"\0" * 64]  # two outputs for one element: refused, INVALID_ARGUMENT
    with pytest.raises(errors.InvalidRequestError):
        setup.node.match_blinded(CALLER, opened.comparison_id, wrong)
    with pytest.raises(errors.SessionExpiredError):  # closed by that refusal: NOT_FOUND
        setup.node.match_blinded(CALLER, opened.comparison_id, wrong)
    closing = [r for r in records(setup.audit) if r["comparison_id"] == opened.comparison_id]
    assert [r["outcome"] for r in closing] == ["refused"]
    assert closing[0]["status_code"] == "INVALID_ARGUMENT"


def test_window_records_wait_while_the_store_is_down_and_are_written_once(
    tmp_path: Path,
) -> None:
    setup = node_setup(tmp_path)
    refuse(setup, CALLER, 5)
    setup.clock.now += 10
    _break_store(setup.audit)
    with pytest.raises(errors.AuditUnavailableError):
        setup.node.record_refusals()
    assert setup.node.refusals_pending == 4  # kept for the next round
    _mend_store(setup.audit)
    assert setup.node.record_refusals() == 1
    assert setup.node.record_refusals() == 0
    assert refusals_on_record(setup, CALLER.department) == 5
    assert setup.audit.verify().ok


def test_a_window_of_zero_records_every_refusal(tmp_path: Path) -> None:
    setup = node_setup(tmp_path, refusal_window=0)
    refuse(setup, CALLER, 4)
    assert [r["outcome"] for r in records(setup.audit)] == ["refused"] * 4
    assert setup.node.refusals_pending == 0


def test_a_window_whose_first_record_was_lost_still_counts_the_rest(tmp_path: Path) -> None:
    setup = node_setup(tmp_path)
    _break_store(setup.audit)
    _, blinded = blind(setup.public_key, IDS[:1])
    with pytest.raises(errors.AuditUnavailableError):  # its record cannot be written
        setup.node.blind_evaluate(CALLER, UNKNOWN, blinded.message)
    _mend_store(setup.audit)
    refuse(setup, CALLER, 3)  # counted against the window the lost one opened
    assert records(setup.audit) == []
    assert setup.node.record_refusals(everything=True) == 1
    (window,) = records(setup.audit)
    assert (window["item_count"], window["related_id"]) == (3, "")
    assert "after one not recorded" in str(window["reason"])
