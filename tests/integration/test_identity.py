"""Who may talk to the node: grpcio's mutual TLS first, then the node's identity checks (auth.py).

A peer without a certificate from the node's CA fails the handshake (UNAVAILABLE, the gRPC
convention) and never reaches the audit log. A certificate from the node's CA that fails the
identity checks, or is revoked, is refused UNAUTHENTICATED with the reason and audited.
"""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import grpc
import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from sqlalchemy import text

from bidui.v1 import catalog_pb2, comparison_pb2
from bidui_cli.main import main
from provider_node.identity.enrolment import revoke
from provider_node.identity.names import DEPARTMENT_URN_PREFIX, serial_hex
from provider_node.identity.pki import create_ca, issue_client_cert, load_ca
from tests.certs import CLIENT_AUTH, SERVER_AUTH, key_of, odd_client_cert
from tests.integration.audit_helpers import audit_records
from tests.integration.conftest import NodeUnderTest


def _hashed_request() -> comparison_pb2.CompareHashedRequest:
    header = comparison_pb2.ComparisonHeader(
        resource_id="residents", comparison_key="id_number", purpose="identity test", key_version=1
    )
    return comparison_pb2.CompareHashedRequest(header=header, tags=[bytes(32)])


def _call(node: NodeUnderTest, cert: Path, key: Path) -> grpc.RpcError:
    channel = node.channel(cert=cert, key=key)
    try:
        _, compare = node.stubs(channel)
        with pytest.raises(grpc.RpcError) as caught:
            compare.CompareHashed(_hashed_request(), timeout=10)
        return caught.value
    finally:
        channel.close()


def test_no_client_certificate_fails_the_handshake_and_is_not_audited(
    node: NodeUnderTest,
) -> None:
    before = len(audit_records(node))
    error = _call(node, Path(), Path())
    assert error.code() == grpc.StatusCode.UNAVAILABLE  # type: ignore[attr-defined]
    assert len(audit_records(node)) == before


def test_certificate_from_another_ca_fails_the_handshake_and_is_not_audited(
    node: NodeUnderTest, tmp_path: Path
) -> None:
    rogue_ca = create_ca(tmp_path / "rogue", "rogue CA")
    rogue = issue_client_cert(rogue_ca, tmp_path / "rogue", "luzhou-civil-affairs")
    before = len(audit_records(node))
    error = _call(node, rogue.cert_path, rogue.key_path)
    assert error.code() == grpc.StatusCode.UNAVAILABLE  # type: ignore[attr-defined]
    assert len(audit_records(node)) == before


@pytest.mark.parametrize(
    ("shape", "reason"),
    [
        ({"department": None}, "no urn:bidui:department:<id> URI SAN"),
        ({"department": "tax-bureau", "extended_usage": None}, "not issued for client auth"),
        ({"department": "tax-bureau", "lifetime": dt.timedelta(days=800)}, "at most 398"),
    ],
    ids=["no-urn", "no-client-auth", "too-long-lived"],
)
def test_node_ca_certificate_failing_identity_checks_is_unauthenticated_and_audited(
    node: NodeUnderTest, tmp_path: Path, shape: dict[str, object], reason: str
) -> None:
    ca = load_ca(node.directory / "pki")
    shape.setdefault("extended_usage", CLIENT_AUTH)
    cert_path, key_path, cert = odd_client_cert(ca, tmp_path, "odd", **shape)  # type: ignore[arg-type]
    before = len(audit_records(node))
    error = _call(node, cert_path, key_path)
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED, error.details()  # type: ignore[attr-defined]
    assert reason in error.details()  # type: ignore[attr-defined]
    (record,) = audit_records(node)[before:]
    assert (record["outcome"], record["status_code"]) == ("refused", "UNAUTHENTICATED")
    assert record["requester"] == ""
    assert record["cert_serial"] == serial_hex(cert)
    assert len(record["cert_fingerprint"]) == 64


@pytest.mark.parametrize(
    "shape",
    [{"extended_usage": SERVER_AUTH}, {"digital_signature": False}],
    ids=["server-auth-only", "no-digital-signature"],
)
def test_node_ca_certificate_unfit_for_tls_clients_never_gets_through(
    node: NodeUnderTest, tmp_path: Path, shape: dict[str, object]
) -> None:
    # OpenSSL itself refuses these in the handshake (or the client will not even use them):
    # refused UNAVAILABLE like any other handshake failure, and not audited.
    ca = load_ca(node.directory / "pki")
    shape.setdefault("extended_usage", CLIENT_AUTH)
    cert_path, key_path, _ = odd_client_cert(ca, tmp_path, "unfit", department="tax", **shape)  # type: ignore[arg-type]
    before = len(audit_records(node))
    error = _call(node, cert_path, key_path)
    assert error.code() == grpc.StatusCode.UNAVAILABLE  # type: ignore[attr-defined]
    assert len(audit_records(node)) == before


def test_revocation_reaches_a_connection_already_open_within_a_second(
    node: NodeUnderTest, tmp_path: Path
) -> None:
    ca = load_ca(node.directory / "pki")
    issued = issue_client_cert(ca, tmp_path, "luzhou-tax-bureau")
    channel = node.channel(cert=issued.cert_path, key=issued.key_path)
    catalog, _ = node.stubs(channel)
    catalog.ListResources(catalog_pb2.ListResourcesRequest(), timeout=10)  # connected, accepted
    serial = serial_hex(issued.certificate)
    revoke(
        node.started.opened.audit,
        issued.certificate,
        "key leaked",
        operator="luzhou-psb",
        now=dt.datetime.now(dt.UTC),
    )
    revoked_at = time.monotonic()
    while True:
        try:
            catalog.ListResources(catalog_pb2.ListResourcesRequest(), timeout=10)
        except grpc.RpcError as error:
            assert error.code() == grpc.StatusCode.UNAUTHENTICATED  # type: ignore[attr-defined]
            assert "revoked" in error.details()  # type: ignore[attr-defined]
            break
        assert time.monotonic() - revoked_at < 1.0, "revocation not in effect within a second"
        time.sleep(0.05)
    channel.close()
    records = audit_records(node)
    assert any(
        r["action"] == "certificate_revocation" and r["cert_serial"] == serial for r in records
    )
    refused = records[-1]
    assert (refused["action"], refused["status_code"]) == ("catalog_read", "UNAUTHENTICATED")
    assert refused["cert_serial"] == serial


def test_a_department_certificate_is_answered(node: NodeUnderTest) -> None:
    channel = node.channel()
    catalog, _ = node.stubs(channel)
    listing = catalog.ListResources(catalog_pb2.ListResourcesRequest(), timeout=10)
    channel.close()
    assert "residents" in [r.id for r in listing.resources]


def test_a_certificate_with_more_than_its_department_is_refused_and_audited(
    node: NodeUnderTest, tmp_path: Path
) -> None:
    ca = load_ca(node.directory / "pki")
    # The default odd certificate carries a DNS name beside its department URN.
    cert_path, key_path, cert = odd_client_cert(
        ca, tmp_path, "with-dns", department="tax-bureau", extended_usage=CLIENT_AUTH
    )
    error = _call(node, cert_path, key_path)
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED  # type: ignore[attr-defined]
    assert "besides its department URN" in error.details()  # type: ignore[attr-defined]
    assert serial_hex(cert) in {r["cert_serial"] for r in audit_records(node)}


def test_a_department_certificate_signed_by_a_ca_true_leaf_is_refused(
    node: NodeUnderTest, tmp_path: Path
) -> None:
    ca = load_ca(node.directory / "pki")
    _, leaf_key, leaf = odd_client_cert(
        ca, tmp_path, "rogue-leaf", extended_usage=CLIENT_AUTH, is_ca=True,
        names=[x509.UniformResourceIdentifier(DEPARTMENT_URN_PREFIX + "rogue-leaf")],
    )  # fmt: skip
    forged_cert, forged_key, _ = odd_client_cert(
        ca, tmp_path, "forged", extended_usage=CLIENT_AUTH,
        names=[x509.UniformResourceIdentifier(DEPARTMENT_URN_PREFIX + "luzhou-police")],
        signer=(leaf.subject, key_of(leaf_key)),
    )  # fmt: skip
    chain = tmp_path / "forged-chain.pem"
    chain.write_bytes(forged_cert.read_bytes() + leaf.public_bytes(serialization.Encoding.PEM))
    error = _call(node, chain, forged_key)
    # grpcio's handshake accepts the chain; the node's own check that its CA signed the
    # certificate itself refuses it, and the refusal is audited.
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED  # type: ignore[attr-defined]
    assert "not issued by this node's CA itself" in error.details()  # type: ignore[attr-defined]


def test_a_revocation_undone_in_the_table_still_holds_and_is_caught(
    node: NodeUnderTest, tmp_path: Path
) -> None:
    issued = issue_client_cert(load_ca(node.directory / "pki"), tmp_path, "undone-bureau")
    revoke(
        node.started.opened.audit,
        issued.certificate,
        "staff gone",
        operator="luzhou-psb",
        now=dt.datetime.now(dt.UTC),
    )
    serial = serial_hex(issued.certificate)
    # An insider with write access to the database sets the revocation back.
    with node.started.opened.engine.begin() as connection:
        connection.execute(
            text(
                "UPDATE certificates SET revoked_at = NULL, revocation_reason = NULL "
                "WHERE serial = :serial"
            ),
            {"serial": serial},
        )
    time.sleep(1.0)  # the revocation list is refreshed every half second
    error = _call(node, issued.cert_path, issued.key_path)
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED  # type: ignore[attr-defined]
    assert "revoked" in error.details()  # type: ignore[attr-defined]
    verified = CliRunner().invoke(main, ["audit", "verify", "--config", str(node.config_path)])
    assert verified.exit_code == 1, verified.output
    assert f"revocations BROKEN: {serial}" in verified.output
