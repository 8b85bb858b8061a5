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

from provider_node.identity.names import (
    CertificateIdentityError,
    certificate_fingerprint,
    department_from_certificate,
)
from provider_node.identity.pki import (
    CertificateAuthority,
    IssuedCertificate,
    create_ca,
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


def _mutual_tls_contexts(
    server_ca: CertificateAuthority,
    server: IssuedCertificate,
    client_ca: CertificateAuthority,
    client: IssuedCertificate,
) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A server that requires a client certificate from ``server_ca``'s chain, and a client
    that trusts ``client_ca`` for the server's."""
    server_side = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_side.load_cert_chain(server.cert_path, server.key_path)
    server_side.load_verify_locations(server_ca.cert_path)
    server_side.verify_mode = ssl.CERT_REQUIRED
    client_side = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client_side.load_cert_chain(client.cert_path, client.key_path)
    client_side.load_verify_locations(client_ca.cert_path)
    return server_side, client_side


def _handshake(server_side: ssl.SSLContext, client_side: ssl.SSLContext) -> None:
    """A whole TLS handshake between the two contexts in memory (OpenSSL on both ends); raises
    the ``ssl.SSLError`` of whichever side refuses the other's certificate."""
    # Each end's output is carried to the other's input after every step.
    server_in, server_out = ssl.MemoryBIO(), ssl.MemoryBIO()
    client_in, client_out = ssl.MemoryBIO(), ssl.MemoryBIO()
    server = server_side.wrap_bio(server_in, server_out, server_side=True)
    client = client_side.wrap_bio(client_in, client_out, server_hostname="localhost")
    done = {"server": False, "client": False}
    for _ in range(10):
        for name, end in (("client", client), ("server", server)):
            if not done[name]:
                try:
                    end.do_handshake()
                    done[name] = True
                except ssl.SSLWantReadError:
                    pass
        server_in.write(client_out.read())
        client_in.write(server_out.read())
        if all(done.values()):
            # TLS 1.3: the server checks the client's certificate as the client's last flight
            # arrives; a refusal reaches the client as an alert on its first read.
            client.write(b"ping")
            server_in.write(client_out.read())
            assert server.read(4) == b"ping"
            return
    raise AssertionError("the handshake did not finish")


def test_issued_files_make_a_mutual_tls_handshake(ca: CertificateAuthority, tmp_path: Path) -> None:
    server = issue_server_cert(ca, tmp_path)
    client = issue_client_cert(ca, tmp_path, "luzhou-civil-affairs")
    _handshake(*_mutual_tls_contexts(ca, server, ca, client))


def test_a_client_certificate_of_another_ca_fails_the_handshake(
    ca: CertificateAuthority, tmp_path: Path
) -> None:
    other = create_ca(tmp_path / "other", "another node's CA")
    server = issue_server_cert(ca, tmp_path)
    stranger = issue_client_cert(other, tmp_path / "other", "luzhou-civil-affairs")
    with pytest.raises(ssl.SSLError, match="certificate"):
        _handshake(*_mutual_tls_contexts(ca, server, ca, stranger))


def test_a_server_certificate_of_another_ca_is_not_trusted(
    ca: CertificateAuthority, tmp_path: Path
) -> None:
    other = create_ca(tmp_path / "other", "another node's CA")
    impostor = issue_server_cert(other, tmp_path / "other")
    client = issue_client_cert(ca, tmp_path, "luzhou-civil-affairs")
    with pytest.raises(ssl.SSLCertVerificationError):
        _handshake(*_mutual_tls_contexts(ca, impostor, ca, client))


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
