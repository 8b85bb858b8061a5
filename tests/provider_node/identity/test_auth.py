"""The node's identity checks on a certificate that already passed the TLS handshake."""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

from provider_node.core.errors import AuditUnavailableError, UnauthenticatedError
from provider_node.identity.auth import Authenticator, RevocationList
from provider_node.identity.names import DEPARTMENT_URN_PREFIX, serial_hex
from provider_node.identity.pki import CertificateAuthority, create_ca, issue_client_cert
from tests.certs import CLIENT_AUTH, SERVER_AUTH, key_of, odd_client_cert


@pytest.fixture
def ca(tmp_path: Path) -> CertificateAuthority:
    return create_ca(tmp_path / "ca", "test CA")


def _pem(path: Path) -> bytes:
    return path.read_bytes()


def _authenticator(revoked: set[str], **kwargs: object) -> Authenticator:
    revocations = RevocationList(lambda: revoked)
    revocations.refresh()
    return Authenticator(revocations, **kwargs)  # type: ignore[arg-type]


def test_a_department_certificate_names_its_department(
    ca: CertificateAuthority, tmp_path: Path
) -> None:
    issued = issue_client_cert(ca, tmp_path, "luzhou-tax")
    caller = _authenticator(set()).identify(_pem(issued.cert_path))
    assert caller.department == "luzhou-tax"
    assert caller.cert_serial == serial_hex(issued.certificate)
    der = issued.certificate.public_bytes(serialization.Encoding.DER)
    assert caller.cert_fingerprint == hashlib.sha256(der).hexdigest()


@pytest.mark.parametrize(
    ("shape", "reason"),
    [
        ({"department": None}, "no urn:bidui:department:<id> URI SAN"),
        ({"extended_usage": None}, "no clientAuth EKU"),
        ({"extended_usage": SERVER_AUTH}, "no clientAuth EKU"),
        ({"digital_signature": False}, "digitalSignature"),
        ({"lifetime": dt.timedelta(days=399)}, "at most 398"),
    ],
)
def test_refusals_carry_reason_serial_and_fingerprint(
    ca: CertificateAuthority, tmp_path: Path, shape: dict[str, object], reason: str
) -> None:
    arguments: dict[str, object] = {"department": "luzhou-tax", "extended_usage": CLIENT_AUTH}
    arguments.update(shape)
    cert_path, _, cert = odd_client_cert(ca, tmp_path, "odd", **arguments)  # type: ignore[arg-type]
    with pytest.raises(UnauthenticatedError, match=reason) as refused:
        _authenticator(set()).identify(_pem(cert_path))
    assert refused.value.cert_serial == serial_hex(cert)
    assert len(refused.value.cert_fingerprint) == 64


def test_expiry_is_checked_on_every_call(ca: CertificateAuthority, tmp_path: Path) -> None:
    issued = issue_client_cert(ca, tmp_path, "luzhou-tax")
    now = [dt.datetime.now(dt.UTC)]
    auth = _authenticator(set(), clock=lambda: now[0])
    auth.identify(_pem(issued.cert_path))
    now[0] = issued.certificate.not_valid_after_utc
    with pytest.raises(UnauthenticatedError, match="expired"):
        auth.identify(_pem(issued.cert_path))


def test_a_revoked_serial_is_refused(ca: CertificateAuthority, tmp_path: Path) -> None:
    issued = issue_client_cert(ca, tmp_path, "luzhou-tax")
    revoked: set[str] = set()
    revocations = RevocationList(lambda: set(revoked))
    revocations.refresh()
    auth = Authenticator(revocations)
    auth.identify(_pem(issued.cert_path))
    revoked.add(serial_hex(issued.certificate))
    revocations.refresh()
    with pytest.raises(UnauthenticatedError, match="revoked"):
        auth.identify(_pem(issued.cert_path))


def test_a_stale_revocation_list_fails_closed(ca: CertificateAuthority, tmp_path: Path) -> None:
    issued = issue_client_cert(ca, tmp_path, "luzhou-tax")
    clock = [0.0]
    revocations = RevocationList(lambda: set(), max_stale=30.0, monotonic=lambda: clock[0])
    auth = Authenticator(revocations)
    with pytest.raises(AuditUnavailableError):  # never loaded
        auth.identify(_pem(issued.cert_path))
    revocations.refresh()
    auth.identify(_pem(issued.cert_path))
    clock[0] = 31.0
    with pytest.raises(AuditUnavailableError, match="revocation list"):
        auth.identify(_pem(issued.cert_path))


# ---- exactly as docs/PROTOCOL.md §1 says: one department URN, clientAuth alone, the CA itself ----

_URN = DEPARTMENT_URN_PREFIX + "luzhou-tax"


@pytest.mark.parametrize(
    ("shape", "reason"),
    [
        (
            {"names": [x509.UniformResourceIdentifier(_URN), x509.DNSName("tax.example")]},
            "besides its department URN",
        ),
        (
            {
                "names": [
                    x509.UniformResourceIdentifier(_URN),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                ]
            },
            "besides its department URN",
        ),
        (
            {
                "names": [
                    x509.UniformResourceIdentifier(_URN),
                    x509.UniformResourceIdentifier("https://tax.example/"),
                ]
            },
            "besides its department URN",
        ),
        (
            {
                "names": [
                    x509.UniformResourceIdentifier(_URN),
                    x509.UniformResourceIdentifier("URN:BIDUI:DEPARTMENT:luzhou-police"),
                ]
            },
            "more than one department",
        ),
        (
            {"names": [x509.UniformResourceIdentifier("URN:BIDUI:DEPARTMENT:luzhou-tax")]},
            "in lowercase",
        ),
        (
            {
                "names": [x509.UniformResourceIdentifier(_URN)],
                "extended_usage": [
                    ExtendedKeyUsageOID.CLIENT_AUTH,
                    ExtendedKeyUsageOID.SERVER_AUTH,
                ],
            },
            "more than client authentication",
        ),
        ({"names": [x509.UniformResourceIdentifier(_URN)], "is_ca": True}, "CA:TRUE"),
    ],
)
def test_a_certificate_that_is_more_than_a_department_s_is_refused(
    ca: CertificateAuthority, tmp_path: Path, shape: dict[str, Any], reason: str
) -> None:
    cert_path, _, cert = odd_client_cert(
        ca, tmp_path, "odd", **{"extended_usage": CLIENT_AUTH, **shape}
    )
    with pytest.raises(UnauthenticatedError, match=reason) as refused:
        _authenticator(set(), issuer=ca.certificate).identify(_pem(cert_path))
    assert refused.value.cert_serial == serial_hex(cert)


def test_only_a_certificate_the_node_s_ca_signed_itself_is_accepted(
    ca: CertificateAuthority, tmp_path: Path
) -> None:
    # A CA:TRUE leaf of the node's CA signs a certificate for another department: the chain
    # verifies, but the node's CA never issued it.
    _, leaf_key_path, leaf = odd_client_cert(
        ca, tmp_path, "rogue", extended_usage=CLIENT_AUTH, is_ca=True,
        names=[x509.UniformResourceIdentifier(DEPARTMENT_URN_PREFIX + "luzhou-rogue")],
    )  # fmt: skip
    forged_path, _, _ = odd_client_cert(
        ca, tmp_path, "forged", extended_usage=CLIENT_AUTH,
        names=[x509.UniformResourceIdentifier(DEPARTMENT_URN_PREFIX + "luzhou-police")],
        signer=(leaf.subject, key_of(leaf_key_path)),
    )  # fmt: skip
    authenticator = _authenticator(set(), issuer=ca.certificate)
    with pytest.raises(UnauthenticatedError, match="not issued by this node's CA itself"):
        authenticator.identify(_pem(forged_path))
    proper = issue_client_cert(ca, tmp_path, "luzhou-police")
    assert authenticator.identify(_pem(proper.cert_path)).department == "luzhou-police"
