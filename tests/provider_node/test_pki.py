"""provider_node.identity.pki: the development CA, server and client certificates, department
identities."""

from __future__ import annotations

import datetime as _dt
import hashlib
import ipaddress
import ssl
import stat
from pathlib import Path
from typing import TypeVar

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from provider_node.identity.pki import (
    CertificateAuthority,
    CertificateIdentityError,
    certificate_fingerprint,
    create_ca,
    department_from_certificate,
    issue_client_cert,
    issue_server_cert,
    load_ca,
)
from provider_node.resources.keys import KeyStoreError


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> CertificateAuthority:
    return create_ca(tmp_path_factory.mktemp("pki"), "test CA")


T = TypeVar("T", bound=x509.ExtensionType)


def ext(cert: x509.Certificate, kind: type[T]) -> T:
    return cert.extensions.get_extension_for_class(kind).value


def test_ca_certificate(ca: CertificateAuthority) -> None:
    cert = ca.certificate
    assert stat.S_IMODE(ca.key_path.stat().st_mode) == 0o600
    assert ext(cert, x509.BasicConstraints).ca is True
    assert ext(cert, x509.KeyUsage).key_cert_sign is True
    validity = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert _dt.timedelta(days=5 * 365 - 1) < validity <= _dt.timedelta(days=5 * 365)
    assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey)
    assert cert.public_key().curve.name == "secp256r1"  # type: ignore[union-attr]
    cert.verify_directly_issued_by(cert)
    assert load_ca(ca.cert_path.parent).certificate == cert


def test_server_certificate(ca: CertificateAuthority, tmp_path: Path) -> None:
    issued = issue_server_cert(ca, tmp_path)
    cert = issued.certificate
    cert.verify_directly_issued_by(ca.certificate)
    assert issued.cert_path == tmp_path / "node.pem"
    assert stat.S_IMODE(issued.key_path.stat().st_mode) == 0o600
    sans = ext(cert, x509.SubjectAlternativeName)
    assert sans.get_values_for_type(x509.DNSName) == ["localhost"]
    assert sans.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    assert ext(cert, x509.ExtendedKeyUsage) == x509.ExtendedKeyUsage(
        [ExtendedKeyUsageOID.SERVER_AUTH]
    )
    assert ext(cert, x509.BasicConstraints).ca is False
    assert (
        ext(cert, x509.AuthorityKeyIdentifier).key_identifier
        == ext(ca.certificate, x509.SubjectKeyIdentifier).digest
    )
    validity = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert validity <= _dt.timedelta(days=365)


def test_client_certificate_names_the_department(ca: CertificateAuthority, tmp_path: Path) -> None:
    issued = issue_client_cert(ca, tmp_path, "luzhou-civil-affairs")
    cert = issued.certificate
    cert.verify_directly_issued_by(ca.certificate)
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == (
        "luzhou-civil-affairs"
    )
    uris = ext(cert, x509.SubjectAlternativeName).get_values_for_type(
        x509.UniformResourceIdentifier
    )
    assert uris == ["urn:bidui:department:luzhou-civil-affairs"]
    assert ExtendedKeyUsageOID.CLIENT_AUTH in ext(cert, x509.ExtendedKeyUsage)
    pem = issued.cert_path.read_bytes()
    der = cert.public_bytes(serialization.Encoding.DER)
    assert department_from_certificate(pem) == "luzhou-civil-affairs"
    assert department_from_certificate(der) == "luzhou-civil-affairs"
    assert department_from_certificate(cert) == "luzhou-civil-affairs"
    fingerprint = hashlib.sha256(der).hexdigest()
    assert certificate_fingerprint(der) == fingerprint
    assert certificate_fingerprint(pem) == fingerprint


def test_issued_files_work_with_the_ssl_module(ca: CertificateAuthority, tmp_path: Path) -> None:
    server = issue_server_cert(ca, tmp_path)
    client = issue_client_cert(ca, tmp_path, "luzhou-civil-affairs")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(server.cert_path, server.key_path)
    context.load_verify_locations(ca.cert_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_cert_chain(client.cert_path, client.key_path)


def test_existing_keys_are_not_overwritten(ca: CertificateAuthority, tmp_path: Path) -> None:
    issue_client_cert(ca, tmp_path, "dept-a")
    with pytest.raises(KeyStoreError, match="refusing to overwrite"):
        issue_client_cert(ca, tmp_path, "dept-a")
    issue_client_cert(ca, tmp_path, "dept-a", overwrite=True)


def test_department_id_is_validated(ca: CertificateAuthority, tmp_path: Path) -> None:
    for bad in ("", "Luzhou", "a/b", "x" * 65):
        with pytest.raises(ValueError, match="not a department id"):
            issue_client_cert(ca, tmp_path, bad)


def _certificate(
    ca: CertificateAuthority,
    common_name: str | None,
    uris: list[str],
    usage: x509.ObjectIdentifier = ExtendedKeyUsageOID.CLIENT_AUTH,
) -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    now = _dt.datetime.now(_dt.UTC)
    names = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)] if common_name else []
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name(names))
        .issuer_name(ca.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + _dt.timedelta(days=1))
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    )
    if uris:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(u) for u in uris]),
            critical=False,
        )
    return builder.sign(ca.private_key, hashes.SHA256())


def test_identity_is_the_department_urn_and_nothing_else(ca: CertificateAuthority) -> None:
    assert department_from_certificate(
        _certificate(ca, None, ["urn:bidui:department:luzhou-tax"])
    ) == ("luzhou-tax")
    refused = {
        # A CN is a display name any CA fills freely: never an identity.
        "no department": _certificate(ca, "luzhou-tax", []),
        "more than one": _certificate(
            ca, None, ["urn:bidui:department:a", "urn:bidui:department:b"]
        ),
        "not a valid department id": _certificate(ca, None, ["urn:bidui:department:A B"]),
    }
    for reason, cert in refused.items():
        with pytest.raises(CertificateIdentityError, match=reason):
            department_from_certificate(cert)
    with pytest.raises(CertificateIdentityError, match=r"not a valid X\.509"):
        department_from_certificate(b"garbage")
