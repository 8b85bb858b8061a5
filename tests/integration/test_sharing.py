"""Conditional sharing over real gRPC and mutual TLS: apply, decide, compare within the grant.

The node's own clock (audit, grants, allowances) runs from Monday 2026-03-02 09:00 China time, so
deadlines are known dates; TLS checks real time.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from bidui.v1 import catalog_pb2, sharing_pb2, sharing_pb2_grpc
from client_sdk import PermissionDeniedError, QuotaExceededError
from provider_node.governance import sharing
from provider_node.identity.pki import issue_client_cert, load_ca
from tests.integration.audit_helpers import audit_records
from tests.integration.conftest import NodeUnderTest, start

RESOURCE = "household_register"
T0 = dt.datetime(2026, 3, 2, 1, 0, tzinfo=dt.UTC)  # 09:00 in China


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeUnderTest]:
    began = time.monotonic()
    running = start(
        tmp_path_factory.mktemp("sharing"),
        clock=lambda: T0 + dt.timedelta(seconds=time.monotonic() - began),
    )
    yield running
    running.started.stop(grace=1.0)


def _desk(node: NodeUnderTest, cert: Path | None = None, key: Path | None = None):  # type: ignore[no-untyped-def]
    channel = node.channel(cert=cert, key=key)
    return channel, sharing_pb2_grpc.SharingServiceStub(channel)


def _apply(desk, **changes: object) -> sharing_pb2.Application:  # type: ignore[no-untyped-def]
    fields: dict[str, object] = {
        "resource_id": RESOURCE,
        "comparison_keys": ["id_number"],
        "modes": [catalog_pb2.MODE_HASHED, catalog_pb2.MODE_BLINDED],
        "duty": "verifying applicants for housing subsidies",
        "items_per_day": 100,
        "valid_until": "2026-12-31",
    }
    fields.update(changes)
    return desk.Apply(sharing_pb2.ApplyRequest(**fields), timeout=10)  # type: ignore[arg-type]


def _compare(node: NodeUnderTest, ids: list[str], mode: str = "hashed"):  # type: ignore[no-untyped-def]
    with node.client() as client:
        return client.compare(
            RESOURCE,
            [{"id_number": i} for i in ids],
            key="id_number",
            mode=mode,  # type: ignore[arg-type]
            purpose="housing subsidy check",
        )


def test_without_a_grant_a_conditional_resource_is_refused_and_audited(
    node: NodeUnderTest,
) -> None:
    with pytest.raises(PermissionDeniedError, match="no grant"):
        _compare(node, [node.residents[0][0]])
    refused = audit_records(node)[-1]
    assert (refused["resource_id"], refused["status_code"]) == (RESOURCE, "PERMISSION_DENIED")


def test_apply_approve_narrowed_compare_within_the_grant(node: NodeUnderTest) -> None:
    channel, desk = _desk(node)
    application = _apply(desk)
    assert application.status == sharing_pb2.APPLICATION_STATUS_PENDING
    # Submitted Monday 2026-03-02: five Chinese working days later is Monday 2026-03-09.
    assert application.decision_deadline == "2026-03-09"
    operator = "luzhou-psb"
    grant = sharing.approve(
        node.started.opened.audit,
        application.id,
        operator=operator,
        now=T0 + dt.timedelta(hours=1),
        decision=sharing.Decision(modes=("hashed",), items_per_day=5),
    )
    seen = desk.GetApplication(sharing_pb2.GetApplicationRequest(application_id=application.id))
    channel.close()
    assert seen.status == sharing_pb2.APPLICATION_STATUS_APPROVED
    assert (seen.grant.id, seen.grant.items_per_day) == (grant.id, 5)

    ids = [r[0] for r in node.residents[:3]]
    result = _compare(node, ids)
    assert result.matched_count == 3
    answered = [r for r in audit_records(node) if r["action"] == "comparison"][-1]
    assert (answered["outcome"], answered["grant_id"]) == ("answered", grant.id)

    # 3 of 5 used today: a request of 3 does not fit and is refused whole, never into debt.
    with pytest.raises(QuotaExceededError, match="2 remain"):
        _compare(node, ids)
    _compare(node, ids[:2])  # exactly what is left
    # Blinded mode was narrowed away.
    with pytest.raises(PermissionDeniedError, match="blinded"):
        _compare(node, ids[:1], mode="blinded")

    sharing.revoke(node.started.opened.audit, grant.id, "duty ended", operator=operator, now=T0)
    with pytest.raises(PermissionDeniedError, match="revoked"):
        _compare(node, ids[:1])
    actions = [r["action"] for r in audit_records(node)]
    assert {"application", "application_approval", "grant_revocation"} <= set(actions)


def test_refusal_needs_a_reason_and_the_requester_sees_it(node: NodeUnderTest) -> None:
    channel, desk = _desk(node)
    application = _apply(desk, comparison_keys=["id_number+name"])
    audit = node.started.opened.audit
    with pytest.raises(Exception, match="reason"):
        sharing.refuse(audit, application.id, "   ", operator="luzhou-psb", now=T0)
    sharing.refuse(
        audit, application.id, "the duty does not need names", operator="luzhou-psb", now=T0
    )
    seen = desk.GetApplication(sharing_pb2.GetApplicationRequest(application_id=application.id))
    listed = desk.ListApplications(sharing_pb2.ListApplicationsRequest(resource_id=RESOURCE))
    channel.close()
    assert seen.status == sharing_pb2.APPLICATION_STATUS_REFUSED
    assert seen.decision_reason == "the duty does not need names"
    assert application.id in [a.id for a in listed.applications]


def test_applications_are_checked_and_private_to_their_department(
    node: NodeUnderTest, tmp_path: Path
) -> None:
    channel, desk = _desk(node)
    mine = _apply(desk)
    for changes, code in [
        ({"resource_id": "residents"}, grpc.StatusCode.FAILED_PRECONDITION),  # unconditional
        ({"resource_id": "sealed_records"}, grpc.StatusCode.PERMISSION_DENIED),  # not shared
        ({"resource_id": "nothing"}, grpc.StatusCode.NOT_FOUND),
        ({"comparison_keys": ["phone"]}, grpc.StatusCode.INVALID_ARGUMENT),
        ({"valid_until": "31/12/2026"}, grpc.StatusCode.INVALID_ARGUMENT),
        ({"duty": " "}, grpc.StatusCode.INVALID_ARGUMENT),
    ]:
        with pytest.raises(grpc.RpcError) as refused:
            _apply(desk, **changes)
        assert refused.value.code() == code, (changes, refused.value.details())  # type: ignore[attr-defined]
    channel.close()
    other = issue_client_cert(load_ca(node.directory / "pki"), tmp_path, "luzhou-tax-bureau")
    channel, theirs = _desk(node, other.cert_path, other.key_path)
    with pytest.raises(grpc.RpcError) as hidden:
        theirs.GetApplication(sharing_pb2.GetApplicationRequest(application_id=mine.id))
    assert hidden.value.code() == grpc.StatusCode.NOT_FOUND  # type: ignore[attr-defined]
    # Another department's application reads exactly as one that does not exist.
    unknown = str(uuid.uuid4())
    with pytest.raises(grpc.RpcError) as absent:
        theirs.GetApplication(sharing_pb2.GetApplicationRequest(application_id=unknown))
    assert absent.value.code() == grpc.StatusCode.NOT_FOUND  # type: ignore[attr-defined]
    assert absent.value.details().replace(unknown, mine.id) == hidden.value.details()  # type: ignore[attr-defined]
    assert theirs.ListApplications(sharing_pb2.ListApplicationsRequest()).applications == []
    channel.close()
