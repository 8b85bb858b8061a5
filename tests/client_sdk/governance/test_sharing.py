"""Applications on the requester's side without a node: the messages the SDK turns into its own
dataclasses, what it refuses before sending, and which failed Apply it sends again.

Against a real node over mutual TLS: tests/integration/test_sdk_sharing.py.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from bidui.v1 import catalog_pb2 as _catalog_pb2
from bidui.v1 import sharing_pb2 as _sharing_pb2
from client_sdk import Application, ApplicationStatus, Grant
from client_sdk.errors import (
    BiduiError,
    DeadlineExceededError,
    InvalidRequestError,
    ResourceNotFoundError,
    ServiceError,
    ServiceUnavailableError,
)
from client_sdk.governance.sharing import SharingCalls, application_from_message
from tests.client_sdk import observed
from tests.client_sdk.stand_in import StandInStub, fake_calls

SUBMITTED = dt.datetime(2026, 3, 2, 1, 0, tzinfo=dt.UTC)
DECIDED = dt.datetime(2026, 3, 3, 2, 30, tzinfo=dt.UTC)


def _stamp(moment: dt.datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def _message(**changes: Any) -> _sharing_pb2.Application:
    fields: dict[str, Any] = {
        "id": "0b9e5a3c-1d4e-4f7a-9a51-6c2d8e0f1a2b",
        "department": "luzhou-civil-affairs",
        "resource_id": "household_register",
        "comparison_keys": ["id_number", "id_number+name"],
        "modes": [_catalog_pb2.MODE_HASHED, _catalog_pb2.MODE_BLINDED],
        "duty": "verifying applicants for housing subsidies",
        "items_per_day": 1000,
        "valid_until": "2026-12-31",
        "submitted_at": _stamp(SUBMITTED),
        "decision_deadline": "2026-03-09",
        "status": _sharing_pb2.APPLICATION_STATUS_PENDING,
    }
    fields.update(changes)
    return _sharing_pb2.Application(**fields)


_GRANT = _sharing_pb2.Grant(
    id="7f3c2a10-5b6d-4e8f-8a9b-0c1d2e3f4a5b",
    comparison_keys=["id_number"],
    modes=[_catalog_pb2.MODE_HASHED],
    items_per_day=500,
    valid_from="2026-03-03",
    valid_until="2026-06-30",
)


def test_a_pending_application_in_the_sdk_s_own_terms() -> None:
    application = application_from_message(_message())
    assert application == Application(
        id="0b9e5a3c-1d4e-4f7a-9a51-6c2d8e0f1a2b",
        department="luzhou-civil-affairs",
        resource_id="household_register",
        comparison_keys=("id_number", "id_number+name"),
        modes=("hashed", "blinded"),
        duty="verifying applicants for housing subsidies",
        items_per_day=1000,
        valid_until=dt.date(2026, 12, 31),
        submitted_at=SUBMITTED,
        decision_deadline=dt.date(2026, 3, 9),
        status=ApplicationStatus.PENDING,
    )
    assert application.submitted_at.tzinfo is not None
    assert application.status == "pending"  # a StrEnum: prints and compares as its word


def test_an_approved_application_carries_its_grant() -> None:
    application = application_from_message(
        _message(
            status=_sharing_pb2.APPLICATION_STATUS_APPROVED,
            decided_at=_stamp(DECIDED),
            grant=_GRANT,
        )
    )
    assert application.status is ApplicationStatus.APPROVED
    assert application.decided_at == DECIDED
    assert application.grant == Grant(
        id="7f3c2a10-5b6d-4e8f-8a9b-0c1d2e3f4a5b",
        comparison_keys=("id_number",),
        modes=("hashed",),
        items_per_day=500,
        valid_from=dt.date(2026, 3, 3),
        valid_until=dt.date(2026, 6, 30),
    )


def test_a_revoked_grant_and_a_refusal_say_when_and_why() -> None:
    revoked = _sharing_pb2.Grant()
    revoked.CopyFrom(_GRANT)
    revoked.revoked_at.CopyFrom(_stamp(DECIDED))
    revoked.revocation_reason = "duty ended"
    grant = application_from_message(_message(grant=revoked)).grant
    assert grant is not None and (grant.revoked_at, grant.revocation_reason) == (
        DECIDED,
        "duty ended",
    )
    refused = application_from_message(
        _message(
            status=_sharing_pb2.APPLICATION_STATUS_REFUSED,
            decided_at=_stamp(DECIDED),
            decision_reason="the duty does not need names",
        )
    )
    assert refused.status is ApplicationStatus.REFUSED and refused.grant is None
    assert refused.decision_reason == "the duty does not need names"


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"status": _sharing_pb2.APPLICATION_STATUS_UNSPECIFIED}, "status"),
        ({"submitted_at": None}, "submitted_at"),
        ({"decision_deadline": "9 March"}, "decision_deadline '9 March'"),
        ({"modes": [_catalog_pb2.MODE_UNSPECIFIED]}, "mode"),
        ({"grant": _sharing_pb2.Grant(valid_from="", valid_until="2026-06-30")}, "grant of"),
    ],
)
def test_a_malformed_answer_is_the_node_s_fault(changes: dict[str, Any], words: str) -> None:
    with pytest.raises(ServiceError, match=words):
        application_from_message(_message(**changes))


# -- the desk: a stand-in stub on a fake clock --------------------------------------------------


def _desk(*failures: tuple[grpc.StatusCode, str]) -> tuple[SharingCalls, StandInStub]:
    listed = _sharing_pb2.ListApplicationsResponse(applications=[_message(), _message(id="b")])
    answers = {"Apply": _message(), "GetApplication": _message(), "ListApplications": listed}
    stub = StandInStub(answers, list(failures))
    return SharingCalls(stub, fake_calls()), stub  # type: ignore[arg-type]


def _apply(desk: SharingCalls, **changes: Any) -> Application:
    arguments: dict[str, Any] = {
        "keys": ["id_number"],
        "modes": ["hashed", "blinded"],
        "duty": "verifying applicants for housing subsidies",
        "items_per_day": 1000,
        "valid_until": dt.date(2026, 12, 31),
    }
    arguments.update(changes)
    return desk.apply("household_register", **arguments)


def test_apply_sends_what_was_asked() -> None:
    desk, stub = _desk()
    assert _apply(desk).status is ApplicationStatus.PENDING
    assert stub.requests == [
        _sharing_pb2.ApplyRequest(
            resource_id="household_register",
            comparison_keys=["id_number"],
            modes=[_catalog_pb2.MODE_HASHED, _catalog_pb2.MODE_BLINDED],
            duty="verifying applicants for housing subsidies",
            items_per_day=1000,
            valid_until="2026-12-31",
        )
    ]


@pytest.mark.parametrize(
    "changes",
    [
        {"keys": "id_number"},  # a string is not a list of keys
        {"keys": []},
        {"modes": []},
        {"modes": ["plain"]},
        {"duty": "  "},
        {"items_per_day": 0},
        {"items_per_day": True},
        {"items_per_day": 2.5},
        {"valid_until": "2026-12-31"},
        {"valid_until": dt.datetime(2026, 12, 31, tzinfo=dt.UTC)},  # an instant is not a day
    ],
)
def test_apply_refuses_what_the_node_would_before_sending(changes: dict[str, Any]) -> None:
    desk, stub = _desk()
    with pytest.raises(InvalidRequestError):
        _apply(desk, **changes)
    assert stub.requests == []


def test_an_apply_that_never_reached_the_node_is_sent_again() -> None:
    desk, stub = _desk((grpc.StatusCode.UNAVAILABLE, observed.CONNECTION_REFUSED))
    assert _apply(desk).status is ApplicationStatus.PENDING
    assert len(stub.requests) == 2


@pytest.mark.parametrize(
    ("code", "details", "cls"),
    [
        # the node died under the call, or stopped with it in flight
        (grpc.StatusCode.UNAVAILABLE, observed.STREAM_REMOVED, ServiceUnavailableError),
        (grpc.StatusCode.CANCELLED, observed.CANCELLING_ALL_CALLS, ServiceError),
        # we stopped waiting; the node may still have recorded it
        (grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded", DeadlineExceededError),
    ],
)
def test_an_apply_that_may_be_on_file_is_not_sent_twice(
    code: grpc.StatusCode, details: str, cls: type[BiduiError]
) -> None:
    desk, stub = _desk((code, details))
    with pytest.raises(cls, match=r"see applications\('household_register'\) before applying"):
        _apply(desk)
    assert len(stub.requests) == 1


def test_reading_is_retried_and_another_s_application_is_not_found() -> None:
    desk, stub = _desk((grpc.StatusCode.UNAVAILABLE, observed.STREAM_REMOVED))
    assert desk.application("0b9e5a3c").id == "0b9e5a3c-1d4e-4f7a-9a51-6c2d8e0f1a2b"
    assert len(stub.requests) == 2
    desk, stub = _desk((grpc.StatusCode.NOT_FOUND, "no application 'x' on this node"))
    with pytest.raises(ResourceNotFoundError, match="GetApplication 'x': no application 'x'"):
        desk.application("x")
    with pytest.raises(InvalidRequestError):
        desk.application("")


def test_applications_filter_by_resource_when_asked() -> None:
    desk, stub = _desk()
    assert [a.id for a in desk.applications()][1] == "b"
    desk.applications("household_register")
    assert [r.resource_id for r in stub.requests] == ["", "household_register"]
