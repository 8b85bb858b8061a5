"""Discrepancy reports on the requester's side without a node: the messages the SDK turns into its
own dataclasses, what it refuses before sending (record values above all), which failed File it
sends again, and how input rows map to positions within the node's comparisons.

Against a real node over mutual TLS: tests/integration/test_discrepancies.py.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from bidui.v1 import discrepancy_pb2 as _discrepancy_pb2
from client_sdk import DiscrepancyReport, DiscrepancyStatus, locate_records
from client_sdk.comparison.results import RecordResult, build_result
from client_sdk.errors import (
    DeadlineExceededError,
    InvalidRequestError,
    ServiceError,
    ServiceUnavailableError,
)
from client_sdk.governance.discrepancies import DiscrepancyCalls, report_from_message
from tests.client_sdk import observed
from tests.client_sdk.stand_in import StandInStub, fake_calls

COMPARED = dt.datetime(2026, 3, 2, 1, 0, tzinfo=dt.UTC)
FILED = dt.datetime(2026, 3, 3, 2, 30, tzinfo=dt.UTC)
COMPARISON = "5f0c8f0e-8f3b-4b8e-9d7e-0a8c1b2d3e4f"
DOUBT = "answered not matched, yet both hold residence permits"


def _stamp(moment: dt.datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def _message(**changes: Any) -> _discrepancy_pb2.DiscrepancyReport:
    fields: dict[str, Any] = {
        "id": "0b9e5a3c-1d4e-4f7a-9a51-6c2d8e0f1a2b",
        "comparison_id": COMPARISON,
        "resource_id": "residents",
        "compared_at": _stamp(COMPARED),
        "positions": [0, 4],
        "description": DOUBT,
        "filed_at": _stamp(FILED),
        "report_deadline": "2026-03-05",
        "answer_deadline": "2026-03-10",
        "status": _discrepancy_pb2.DISCREPANCY_STATUS_PENDING,
    }
    fields.update(changes)
    return _discrepancy_pb2.DiscrepancyReport(**fields)


def test_a_pending_report_in_the_sdk_s_own_terms() -> None:
    assert report_from_message(_message()) == DiscrepancyReport(
        id="0b9e5a3c-1d4e-4f7a-9a51-6c2d8e0f1a2b",
        comparison_id=COMPARISON,
        resource_id="residents",
        compared_at=COMPARED,
        positions=(0, 4),
        description=DOUBT,
        filed_at=FILED,
        report_deadline=dt.date(2026, 3, 5),
        answer_deadline=dt.date(2026, 3, 10),
        status=DiscrepancyStatus.PENDING,
    )
    corrected = report_from_message(
        _message(
            status=_discrepancy_pb2.DISCREPANCY_STATUS_CORRECTED,
            answered_at=_stamp(FILED),
            correction_id="7f3c2a10-5b6d-4e8f-8a9b-0c1d2e3f4a5b",
        )
    )
    assert corrected.status == "corrected" and corrected.answered_at == FILED


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"status": _discrepancy_pb2.DISCREPANCY_STATUS_UNSPECIFIED}, "status"),
        ({"filed_at": None}, "filed_at"),
        ({"answer_deadline": "10 March"}, "answer_deadline '10 March'"),
    ],
)
def test_a_malformed_answer_is_the_node_s_fault(changes: dict[str, Any], words: str) -> None:
    with pytest.raises(ServiceError, match=words):
        report_from_message(_message(**changes))


def _desk(*failures: tuple[grpc.StatusCode, str]) -> tuple[DiscrepancyCalls, StandInStub]:
    listed = _discrepancy_pb2.ListDiscrepanciesResponse(reports=[_message()])
    stub = StandInStub({"File": _message(), "Get": _message(), "List": listed}, list(failures))
    return DiscrepancyCalls(stub, fake_calls()), stub  # type: ignore[arg-type]


def test_file_sends_what_was_asked_and_reads_are_plain() -> None:
    desk, stub = _desk()
    assert desk.report_discrepancy(f" {COMPARISON} ", [4, 0], f"  {DOUBT} ").positions == (0, 4)
    assert stub.requests == [
        _discrepancy_pb2.FileDiscrepancyRequest(
            comparison_id=COMPARISON, positions=[4, 0], description=DOUBT
        )
    ]
    assert desk.discrepancy("0b9e5a3c").comparison_id == COMPARISON
    assert [r.id for r in desk.discrepancies(COMPARISON)] == [_message().id]
    assert stub.requests[-1] == _discrepancy_pb2.ListDiscrepanciesRequest(comparison_id=COMPARISON)


@pytest.mark.parametrize(
    ("arguments", "words"),
    [
        ((" ", [0], DOUBT), "comparison_id"),
        ((COMPARISON, [], DOUBT), "positions"),
        ((COMPARISON, "04", DOUBT), "list of whole numbers"),
        ((COMPARISON, [-1], DOUBT), "position -1"),
        ((COMPARISON, [True], DOUBT), "position True"),
        ((COMPARISON, [2**32], DOUBT), "position 4294967296"),
        ((COMPARISON, [0], " "), "description must say"),
        ((COMPARISON, [0], "row 0 is 110105194912310020"), "record values"),
        ((COMPARISON, [0], "電話１３８００１３８０００"), "record values"),
    ],
)
def test_file_refuses_before_sending(arguments: tuple[Any, Any, Any], words: str) -> None:
    desk, stub = _desk()
    with pytest.raises(InvalidRequestError, match=words):
        desk.report_discrepancy(*arguments)
    assert stub.requests == []  # a record value never leaves the requester


def test_a_file_that_never_reached_the_node_is_sent_again() -> None:
    desk, stub = _desk((grpc.StatusCode.UNAVAILABLE, observed.CONNECTION_REFUSED))
    assert desk.report_discrepancy(COMPARISON, [0], DOUBT).status is DiscrepancyStatus.PENDING
    assert len(stub.requests) == 2


@pytest.mark.parametrize(
    ("code", "details", "cls"),
    [
        (grpc.StatusCode.UNAVAILABLE, observed.STREAM_REMOVED, ServiceUnavailableError),
        (grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded", DeadlineExceededError),
    ],
)
def test_a_file_that_may_be_on_record_is_not_sent_twice(
    code: grpc.StatusCode, details: str, cls: type[Exception]
) -> None:
    desk, stub = _desk((code, details))
    with pytest.raises(cls, match=r"see discrepancies\('5f0c8f0e-.*'\) before reporting"):
        desk.report_discrepancy(COMPARISON, [0], DOUBT)
    assert len(stub.requests) == 1


def test_input_rows_are_located_across_requests_and_invalid_rows() -> None:
    # Seven rows, at most three per request: rows 0-2, 3-5 (all invalid: no request), 6.
    invalid = {1, 3, 4, 5}
    outcomes = [(i, True) for i in range(7) if i not in invalid]
    errors = [RecordResult(i, "error", "id_number", "bad checksum") for i in sorted(invalid)]
    result = build_result(
        7, outcomes, errors, resource_id="r", comparison_key="k", mode="hashed",
        request_id="q", comparison_ids=["first", "second"],
    )  # fmt: skip
    assert locate_records(result, [0, 2, 6], 3) == {"first": [0, 1], "second": [0]}
    with pytest.raises(InvalidRequestError, match="record 4 was invalid and never sent"):
        locate_records(result, [4], 3)
    with pytest.raises(InvalidRequestError, match="record 7 is not in the result"):
        locate_records(result, [7], 3)
    with pytest.raises(ValueError, match="fewer comparisons"):
        locate_records(result, [6], 1)
