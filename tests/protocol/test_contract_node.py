"""docs/PROTOCOL.md against a real node: what a client written from the document sees.

One node per module (``tests.integration.conftest.start``: real mutual TLS on loopback, real audit
log read through export). Each test holds one statement of the document:

- section 1: a certificate refused in the handshake shows as UNAVAILABLE "Socket closed", never
  mentioning the handshake, and is not audited; one without an EKU extension at all gets through
  the handshake and is refused UNAUTHENTICATED and audited;
- section 2: the audit records a blinded comparison leaves, and how they are tied together;
- section 9: an empty ``request_id`` stays empty in the audit log;
- section 11: the grant checks' order (no covering grant: PERMISSION_DENIED whatever grant_id
  says; a covering grant and an unknown grant_id: NOT_FOUND).
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pysodium
import pytest
from cryptography.x509.oid import ExtendedKeyUsageOID

from bidui.v1 import catalog_pb2, comparison_pb2, sharing_pb2, sharing_pb2_grpc
from provider_node.governance import sharing
from provider_node.identity.names import serial_hex
from provider_node.identity.pki import load_ca
from tests.certs import odd_client_cert
from tests.integration.audit_helpers import audit_records
from tests.integration.conftest import NodeUnderTest, start

# The node's own clock (grants, allowances, audit) is fixed to a date its calendar knows; TLS
# checks real time.
T0 = dt.datetime(2026, 3, 2, 1, 0, tzinfo=dt.UTC)  # Monday, 09:00 in China
CONDITIONAL = "household_register"


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeUnderTest]:
    began = time.monotonic()
    running = start(
        tmp_path_factory.mktemp("contract"),
        clock=lambda: T0 + dt.timedelta(seconds=time.monotonic() - began),
    )
    yield running
    running.started.stop(grace=1.0)


def _header(resource_id: str = "residents", **fields: Any) -> comparison_pb2.ComparisonHeader:
    values: dict[str, Any] = {
        "resource_id": resource_id,
        "comparison_key": "id_number",
        "purpose": "protocol contract test",
        "key_version": 1,
    }
    values.update(fields)
    return comparison_pb2.ComparisonHeader(**values)


def _refusal(call: Any, request: Any, channel: grpc.Channel) -> grpc.RpcError:
    try:
        with pytest.raises(grpc.RpcError) as caught:
            call(request, timeout=10)
        return caught.value
    finally:
        channel.close()


# ---- section 1: how certificate problems show --------------------------------------------------


def _list_with(node: NodeUnderTest, cert: Path, key: Path) -> grpc.RpcError:
    channel = node.channel(cert=cert, key=key)
    catalog, _ = node.stubs(channel)
    return _refusal(catalog.ListResources, catalog_pb2.ListResourcesRequest(), channel)


@pytest.mark.parametrize(
    "extended_usage",
    [
        [ExtendedKeyUsageOID.CODE_SIGNING],
        [ExtendedKeyUsageOID.SERVER_AUTH],
        [ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE],
    ],
    ids=["codeSigning-only", "serverAuth-only", "anyExtendedKeyUsage-only"],
)
def test_an_eku_without_client_auth_fails_the_handshake_as_socket_closed_unaudited(
    node: NodeUnderTest, tmp_path: Path, extended_usage: list[Any]
) -> None:
    ca = load_ca(node.directory / "pki")
    cert, key, _ = odd_client_cert(
        ca, tmp_path, "purpose", department="tax-bureau", extended_usage=extended_usage
    )
    before = len(audit_records(node))
    error = _list_with(node, cert, key)
    assert error.code() == grpc.StatusCode.UNAVAILABLE  # type: ignore[attr-defined]
    details = error.details()  # type: ignore[attr-defined]
    assert "Socket closed" in details
    for word in ("handshake", "ssl", "certificate"):
        assert word not in details.lower()
    assert len(audit_records(node)) == before


def test_no_client_certificate_also_shows_as_socket_closed(node: NodeUnderTest) -> None:
    error = _list_with(node, Path(), Path())
    assert error.code() == grpc.StatusCode.UNAVAILABLE  # type: ignore[attr-defined]
    assert "Socket closed" in error.details()  # type: ignore[attr-defined]


def test_no_eku_extension_at_all_passes_the_handshake_and_is_refused_unauthenticated(
    node: NodeUnderTest, tmp_path: Path
) -> None:
    ca = load_ca(node.directory / "pki")
    cert, key, certificate = odd_client_cert(
        ca, tmp_path, "anything", department="tax-bureau", extended_usage=None
    )
    before = len(audit_records(node))
    error = _list_with(node, cert, key)
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED  # type: ignore[attr-defined]
    assert "no clientAuth EKU" in error.details()  # type: ignore[attr-defined]
    (record,) = audit_records(node)[before:]
    assert (record["outcome"], record["status_code"]) == ("refused", "UNAUTHENTICATED")
    assert record["requester"] == ""
    assert record["cert_serial"] == serial_hex(certificate)


# ---- section 9: request_id ---------------------------------------------------------------------


def test_an_empty_request_id_stays_empty_in_the_audit_log(node: NodeUnderTest) -> None:
    channel = node.channel()
    _, compare = node.stubs(channel)
    request = comparison_pb2.CompareHashedRequest(header=_header(), tags=[bytes(32)])
    result = compare.CompareHashed(request, timeout=10)
    channel.close()
    (record,) = [r for r in audit_records(node) if r["comparison_id"] == result.comparison_id]
    assert record["outcome"] == "answered"
    assert record["request_id"] == ""


# ---- section 2: a blinded comparison's audit records -------------------------------------------


def _random_elements(count: int) -> list[bytes]:
    return [pysodium.crypto_core_ristretto255_random() for _ in range(count)]


def test_a_blinded_comparison_leaves_an_opening_and_its_own_record(node: NodeUnderTest) -> None:
    channel = node.channel()
    _, compare = node.stubs(channel)
    header = _header(request_id="contract-blinded-1")
    opened = compare.BlindEvaluate(
        comparison_pb2.BlindEvaluateRequest(header=header, blinded_elements=_random_elements(3)),
        timeout=10,
    )
    outputs = [bytes(64)] * 3
    result = compare.MatchBlinded(
        comparison_pb2.MatchBlindedRequest(comparison_id=opened.comparison_id, outputs=outputs),
        timeout=10,
    )
    channel.close()
    cid = result.comparison_id
    assert cid == opened.comparison_id

    records = [r for r in audit_records(node) if cid in (r["comparison_id"], r["related_id"])]
    assert len(records) == 2
    opening, own = records  # export order is seq order: the opening first
    assert (opening["outcome"], opening["status_code"]) == ("opened", "OK")
    assert opening["related_id"] == cid
    assert opening["comparison_id"] != cid
    uuid.UUID(opening["comparison_id"])
    assert (own["outcome"], own["status_code"]) == ("answered", "OK")
    assert own["comparison_id"] == cid
    assert own["related_id"] == ""
    assert opening["seq"] < own["seq"]
    for field in ("action", "requester", "cert_serial", "resource_id", "mode", "request_id"):
        assert opening[field] == own[field], field
    assert (opening["item_count"], own["item_count"]) == (3, 3)
    assert opening["payload_sha256"] != own["payload_sha256"]


def test_a_blinded_comparison_closed_by_a_refusal_has_the_refusal_as_its_own_record(
    node: NodeUnderTest,
) -> None:
    channel = node.channel()
    _, compare = node.stubs(channel)
    opened = compare.BlindEvaluate(
        comparison_pb2.BlindEvaluateRequest(header=_header(), blinded_elements=_random_elements(2)),
        timeout=10,
    )
    error = _refusal(
        compare.MatchBlinded,
        comparison_pb2.MatchBlindedRequest(comparison_id=opened.comparison_id, outputs=[bytes(64)]),
        channel,
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]
    cid = opened.comparison_id
    records = [r for r in audit_records(node) if cid in (r["comparison_id"], r["related_id"])]
    assert [(r["outcome"], r["related_id"] == cid) for r in records] == [
        ("opened", True),
        ("refused", False),
    ]
    assert records[1]["comparison_id"] == cid
    assert records[1]["status_code"] == "INVALID_ARGUMENT"


# ---- section 11: the grant checks' order -------------------------------------------------------


def _compare_conditional(node: NodeUnderTest, grant_id: str) -> grpc.RpcError | str:
    channel = node.channel()
    _, compare = node.stubs(channel)
    request = comparison_pb2.CompareHashedRequest(
        header=_header(CONDITIONAL, grant_id=grant_id), tags=[bytes(32)]
    )
    try:
        return str(compare.CompareHashed(request, timeout=10).comparison_id)
    except grpc.RpcError as error:
        return error
    finally:
        channel.close()


def test_an_unknown_grant_id_is_not_found_only_once_some_grant_covers_the_comparison(
    node: NodeUnderTest,
) -> None:
    unknown = str(uuid.uuid4())
    refused = _compare_conditional(node, unknown)
    assert isinstance(refused, grpc.RpcError)
    assert refused.code() == grpc.StatusCode.PERMISSION_DENIED  # type: ignore[attr-defined]

    channel = node.channel()
    desk = sharing_pb2_grpc.SharingServiceStub(channel)
    application = desk.Apply(
        sharing_pb2.ApplyRequest(
            resource_id=CONDITIONAL,
            comparison_keys=["id_number"],
            modes=[catalog_pb2.MODE_HASHED],
            duty="protocol contract test",
            items_per_day=100,
            valid_until="2026-12-31",
        ),
        timeout=10,
    )
    channel.close()
    grant = sharing.approve(
        node.started.opened.audit,
        application.id,
        operator="luzhou-psb",
        now=T0 + dt.timedelta(minutes=5),
    )

    not_found = _compare_conditional(node, unknown)
    assert isinstance(not_found, grpc.RpcError)
    assert not_found.code() == grpc.StatusCode.NOT_FOUND  # type: ignore[attr-defined]
    assert _compare_conditional(node, "not-a-uuid").code() == grpc.StatusCode.NOT_FOUND  # type: ignore[union-attr]

    answered = _compare_conditional(node, grant.id)
    assert isinstance(answered, str)
    (record,) = [r for r in audit_records(node) if r["comparison_id"] == answered]
    assert record["grant_id"] == grant.id
