"""A development PKI for the node's mTLS (article 34: identity authentication before access).

```
ca.pem / ca.key          self-signed CA, 5 years, pathlen 0, keyCertSign + cRLSign
node.pem / node.key      server certificate, 1 year, serverAuth, DNS/IP SANs (localhost, 127.0.0.1)
clients/<dept>.pem/.key  client certificate, 1 year, clientAuth,
                         subject CN = <dept>, SAN URI urn:bidui:department:<dept>
```

All keys are ECDSA P-256, PEM, files mode 0600. The requesting department's identity is the
department id in its client certificate's URI SAN (``names.department_from_certificate``); the
audit log records the certificate's serial and SHA-256 fingerprint.

A department makes its own key and certificate signing request on its own machine; the operator
signs the request with ``sign_client_request`` (``bidui provider pki sign``), so the private key
never leaves the department. ``issue_client_cert`` makes key and certificate together, for
development and the demo only.
"""

from __future__ import annotations

import datetime as _dt
import ipaddress
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPublicKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from provider_node.config import DEPARTMENT_ID_RE
from provider_node.identity.names import (
    DEPARTMENT_URN_PREFIX,
    CertificateIdentityError,
    department_from_extensions,
)
from provider_node.resources.keys import write_secret_file

__all__ = [
    "CA_VALIDITY",
    "CERT_VALIDITY",
    "CertificateAuthority",
    "IssuedCertificate",
    "create_ca",
    "issue_client_cert",
    "issue_server_cert",
    "load_ca",
    "sign_client_request",
]

CA_VALIDITY = _dt.timedelta(days=5 * 365)
CERT_VALIDITY = _dt.timedelta(days=365)
_SIGNABLE_KEYS = (ec.EllipticCurvePublicKey, rsa.RSAPublicKey, ed25519.Ed25519PublicKey)
# Tolerates small clock differences between the machines.
_BACKDATE = _dt.timedelta(minutes=5)


@dataclass(frozen=True)
class CertificateAuthority:
    certificate: x509.Certificate
    private_key: ec.EllipticCurvePrivateKey
    cert_path: Path
    key_path: Path

    def __repr__(self) -> str:
        return f"CertificateAuthority(cert_path={str(self.cert_path)!r}, private_key=<hidden>)"


@dataclass(frozen=True)
class IssuedCertificate:
    certificate: x509.Certificate
    cert_path: Path
    key_path: Path


def _now() -> _dt.datetime:
    return _dt.datetime.now(_dt.UTC)


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey, *, overwrite: bool) -> None:
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    write_secret_file(path, pem, overwrite=overwrite)


def _write_cert(path: Path, certificate: x509.Certificate) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    os.replace(temporary, path)


def _check_department(department: str) -> None:
    if not DEPARTMENT_ID_RE.fullmatch(department):
        raise ValueError(f"{department!r} is not a department id (1-64 of a-z, 0-9, _ and -)")


def create_ca(
    directory: str | os.PathLike[str],
    name: str,
    *,
    overwrite: bool = False,
    now: _dt.datetime | None = None,
) -> CertificateAuthority:
    """Create ``ca.pem`` and ``ca.key`` (0600) in ``directory``; the CA signs certificates only."""
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    start = (now or _now()) - _BACKDATE
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "bidui development PKI"),
        ]
    )
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + CA_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ski, critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    ca = CertificateAuthority(certificate, key, path / "ca.pem", path / "ca.key")
    _write_key(ca.key_path, key, overwrite=overwrite)
    _write_cert(ca.cert_path, certificate)
    return ca


def load_ca(directory: str | os.PathLike[str]) -> CertificateAuthority:
    """Read a CA written by ``create_ca``."""
    path = Path(directory)
    certificate = x509.load_pem_x509_certificate((path / "ca.pem").read_bytes())
    key = serialization.load_pem_private_key((path / "ca.key").read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{path / 'ca.key'} is not an EC private key")
    return CertificateAuthority(certificate, key, path / "ca.pem", path / "ca.key")


def _issue(
    ca: CertificateAuthority,
    subject: x509.Name,
    sans: Sequence[x509.GeneralName],
    usage: x509.ObjectIdentifier,
    now: _dt.datetime | None,
    public_key: CertificateIssuerPublicKeyTypes,
    validity: _dt.timedelta = CERT_VALIDITY,
) -> x509.Certificate:
    start = (now or _now()) - _BACKDATE
    end = min(start + validity, ca.certificate.not_valid_after_utc)
    ca_ski = ca.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca.certificate.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(x509.SubjectAlternativeName(list(sans)), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False
        )
        .sign(ca.private_key, hashes.SHA256())
    )
    return certificate


def _san(hostname: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(hostname))
    except ValueError:
        return x509.DNSName(hostname)


def issue_server_cert(
    ca: CertificateAuthority,
    directory: str | os.PathLike[str],
    hostnames: Sequence[str] = ("localhost", "127.0.0.1"),
    *,
    name: str = "node",
    overwrite: bool = False,
    now: _dt.datetime | None = None,
) -> IssuedCertificate:
    """Write ``<name>.pem`` / ``<name>.key``: a serverAuth certificate for ``hostnames``.

    Names that parse as IP addresses become IP SANs, the others DNS SANs.
    """
    if not hostnames:
        raise ValueError("a server certificate needs at least one hostname")
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostnames[0])])
    key = ec.generate_private_key(ec.SECP256R1())
    certificate = _issue(
        ca,
        subject,
        [_san(h) for h in hostnames],
        ExtendedKeyUsageOID.SERVER_AUTH,
        now,
        key.public_key(),
    )
    issued = IssuedCertificate(certificate, path / f"{name}.pem", path / f"{name}.key")
    _write_key(issued.key_path, key, overwrite=overwrite)
    _write_cert(issued.cert_path, certificate)
    return issued


def issue_client_cert(
    ca: CertificateAuthority,
    directory: str | os.PathLike[str],
    department: str,
    *,
    overwrite: bool = False,
    now: _dt.datetime | None = None,
) -> IssuedCertificate:
    """Write ``<department>.pem`` and ``.key``: a clientAuth certificate and its key.

    For development and the demo: the key is made on the provider's machine. Departments enrol
    with a CSR of their own instead (``sign_client_request``).
    """
    _check_department(department)
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    certificate = _client_certificate(ca, department, key.public_key(), now, CERT_VALIDITY)
    issued = IssuedCertificate(certificate, path / f"{department}.pem", path / f"{department}.key")
    _write_key(issued.key_path, key, overwrite=overwrite)
    _write_cert(issued.cert_path, certificate)
    return issued


def _client_certificate(
    ca: CertificateAuthority,
    department: str,
    public_key: CertificateIssuerPublicKeyTypes,
    now: _dt.datetime | None,
    validity: _dt.timedelta,
) -> x509.Certificate:
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, department),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, department),
        ]
    )
    sans = [x509.UniformResourceIdentifier(DEPARTMENT_URN_PREFIX + department)]
    return _issue(ca, subject, sans, ExtendedKeyUsageOID.CLIENT_AUTH, now, public_key, validity)


def sign_client_request(
    ca: CertificateAuthority,
    request_pem: bytes,
    *,
    department: str | None = None,
    validity: _dt.timedelta = CERT_VALIDITY,
    now: _dt.datetime | None = None,
) -> x509.Certificate:
    """Sign a department's certificate signing request (PEM) as a clientAuth certificate.

    The department is the request's ``urn:bidui:department:<id>`` URI SAN; ``department``, when
    given, must agree. Only the public key and the department are taken from the request: the
    usages, lifetime and names are the CA's. Raises ``CertificateIdentityError`` with the reason.
    """
    try:
        request = x509.load_pem_x509_csr(request_pem)
    except ValueError:
        raise CertificateIdentityError("is not a PEM certificate signing request") from None
    if not request.is_signature_valid:
        raise CertificateIdentityError("is not signed by its own key (the request is damaged)")
    named = department_from_extensions(request.extensions)
    if department is not None and named != department:
        raise CertificateIdentityError(f"names department {named!r}, not {department!r}")
    public_key = request.public_key()
    if not isinstance(
        public_key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey
    ):
        raise CertificateIdentityError("has a key type this node does not sign (use EC P-256)")
    if isinstance(public_key, rsa.RSAPublicKey) and public_key.key_size < 2048:
        raise CertificateIdentityError("has an RSA key shorter than 2048 bits")
    return _client_certificate(ca, named, public_key, now, validity)
