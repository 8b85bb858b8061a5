"""A development PKI for the node's mTLS (article 34: identity authentication before access).

```
ca.pem / ca.key          self-signed CA, 5 years, pathlen 0, keyCertSign + cRLSign
node.pem / node.key      server certificate, 1 year, serverAuth, DNS/IP SANs (localhost, 127.0.0.1)
clients/<dept>.pem/.key  client certificate, 1 year, clientAuth,
                         subject CN = <dept>, SAN URI urn:bidui:department:<dept>
```

All keys are ECDSA P-256, PEM, files mode 0600. The requesting department's identity is the
department id in its client certificate (``department_from_certificate``); the audit log records
the certificate's SHA-256 fingerprint (``certificate_fingerprint``).

For production, departments' certificates come from the platform's own CA; only the identity
convention (the URN SAN, or a CN that is a department id) has to hold.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import ipaddress
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from provider_node.config import DEPARTMENT_ID_RE
from provider_node.keys import write_secret_file

__all__ = [
    "CA_VALIDITY",
    "CERT_VALIDITY",
    "DEPARTMENT_URN_PREFIX",
    "CertificateAuthority",
    "CertificateIdentityError",
    "IssuedCertificate",
    "certificate_fingerprint",
    "create_ca",
    "department_from_certificate",
    "issue_client_cert",
    "issue_server_cert",
    "load_ca",
]

DEPARTMENT_URN_PREFIX = "urn:bidui:department:"
CA_VALIDITY = _dt.timedelta(days=5 * 365)
CERT_VALIDITY = _dt.timedelta(days=365)
# Tolerates small clock differences between the machines.
_BACKDATE = _dt.timedelta(minutes=5)


class CertificateIdentityError(ValueError):
    """A certificate carries no usable department identity, or contradictory ones."""


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
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    start = (now or _now()) - _BACKDATE
    end = min(start + CERT_VALIDITY, ca.certificate.not_valid_after_utc)
    key = ec.generate_private_key(ec.SECP256R1())
    ca_ski = ca.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca.certificate.subject)
        .public_key(key.public_key())
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
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False
        )
        .sign(ca.private_key, hashes.SHA256())
    )
    return certificate, key


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
    certificate, key = _issue(
        ca, subject, [_san(h) for h in hostnames], ExtendedKeyUsageOID.SERVER_AUTH, now
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
    """Write ``<department>.pem`` and ``.key``: the department's clientAuth certificate."""
    _check_department(department)
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, department),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, department),
        ]
    )
    sans = [x509.UniformResourceIdentifier(DEPARTMENT_URN_PREFIX + department)]
    certificate, key = _issue(ca, subject, sans, ExtendedKeyUsageOID.CLIENT_AUTH, now)
    issued = IssuedCertificate(certificate, path / f"{department}.pem", path / f"{department}.key")
    _write_key(issued.key_path, key, overwrite=overwrite)
    _write_cert(issued.cert_path, certificate)
    return issued


def _load_certificate(certificate: bytes | x509.Certificate) -> x509.Certificate:
    if isinstance(certificate, x509.Certificate):
        return certificate
    try:
        if certificate.lstrip().startswith(b"-----BEGIN"):
            return x509.load_pem_x509_certificate(certificate)
        return x509.load_der_x509_certificate(certificate)
    except ValueError:
        raise CertificateIdentityError("not a valid X.509 certificate") from None


def department_from_certificate(certificate: bytes | x509.Certificate) -> str:
    """The department id a client certificate (DER, PEM or parsed) stands for.

    The ``urn:bidui:department:<id>`` URI SAN is authoritative; without one, a subject CN that is a
    department id is accepted. A certificate whose SAN and CN name different departments, that
    names several departments, or that is not issued for client authentication is refused.
    This function does not check the chain: the TLS handshake has done that.
    """
    cert = _load_certificate(certificate)
    try:
        usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        usage = None
    if usage is not None and ExtendedKeyUsageOID.CLIENT_AUTH not in usage:
        raise CertificateIdentityError("certificate is not issued for client authentication")
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        uris = sans.get_values_for_type(x509.UniformResourceIdentifier)
    except x509.ExtensionNotFound:
        uris = []
    urns = [
        uri[len(DEPARTMENT_URN_PREFIX) :] for uri in uris if uri.startswith(DEPARTMENT_URN_PREFIX)
    ]
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    common_name = names[0].value if len(names) == 1 else None
    if isinstance(common_name, bytes):
        common_name = None
    if len(urns) > 1:
        raise CertificateIdentityError("certificate names more than one department")
    if urns:
        department = urns[0]
        if not DEPARTMENT_ID_RE.fullmatch(department):
            raise CertificateIdentityError(
                "certificate's department URN is not a valid department id"
            )
        if common_name is not None and common_name != department:
            raise CertificateIdentityError("certificate's subject CN and department URN disagree")
        return department
    if common_name is not None and DEPARTMENT_ID_RE.fullmatch(common_name):
        return common_name
    raise CertificateIdentityError(
        "certificate carries no department identity (URI SAN urn:bidui:department:<id> or CN)"
    )


def certificate_fingerprint(certificate: bytes | x509.Certificate) -> str:
    """SHA-256 of the certificate's DER encoding, lowercase hex (PEM and parsed input accepted)."""
    if isinstance(certificate, bytes) and not certificate.lstrip().startswith(b"-----BEGIN"):
        return hashlib.sha256(certificate).hexdigest()
    der = _load_certificate(certificate).public_bytes(serialization.Encoding.DER)
    return hashlib.sha256(der).hexdigest()
