"""Certificates for the SDK's tests, made with ``cryptography``: a CA, node and department
certificates, and the odd ones a test needs (expired, another CA's, no department, wrong usage).

Deliberately independent of ``provider_node.identity.pki``: the SDK's checks must accept what any CA
issues for a department, not only what this project's node happens to make.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CLIENT_AUTH = ExtendedKeyUsageOID.CLIENT_AUTH
SERVER_AUTH = ExtendedKeyUsageOID.SERVER_AUTH
NODE_NAME = "node.test"

_HOUR = dt.timedelta(hours=1)


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not ca,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


@dataclass(frozen=True)
class Issued:
    """A certificate and its key, as PEM."""

    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def cert_pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    @property
    def key_pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def write(self, directory: Path, name: str) -> tuple[Path, Path]:
        """Write ``<name>.pem`` and ``<name>.key``; return their paths."""
        cert_path, key_path = directory / f"{name}.pem", directory / f"{name}.key"
        cert_path.write_bytes(self.cert_pem)
        key_path.write_bytes(self.key_pem)
        key_path.chmod(0o600)
        return cert_path, key_path


class Authority:
    """A CA that signs node and department certificates."""

    def __init__(self, name: str) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = dt.datetime.now(dt.UTC)
        self.certificate = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _HOUR)
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_key_usage(ca=True), critical=True)
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()), critical=False
            )
            .sign(self.key, hashes.SHA256())
        )

    @property
    def cert_pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def write(self, directory: Path, name: str = "ca") -> Path:
        path = directory / f"{name}.pem"
        path.write_bytes(self.cert_pem)
        return path

    def issue(
        self,
        common_name: str,
        names: list[x509.GeneralName],
        usages: list[x509.ObjectIdentifier],
        *,
        not_before: dt.datetime | None = None,
        lifetime: dt.timedelta = dt.timedelta(days=7),
    ) -> Issued:
        key = ec.generate_private_key(ec.SECP256R1())
        start = not_before or dt.datetime.now(dt.UTC) - _HOUR
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(start + lifetime)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(ca=False), critical=True)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                critical=False,
            )
        )
        if names:
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        if usages:
            builder = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        return Issued(builder.sign(self.key, hashes.SHA256()), key)

    def department(
        self,
        department: str | None = "civil-affairs",
        *,
        usages: list[x509.ObjectIdentifier] | None = None,
        not_before: dt.datetime | None = None,
        lifetime: dt.timedelta = dt.timedelta(days=7),
    ) -> Issued:
        """A department's client certificate; ``department=None`` leaves out the URN SAN."""
        names: list[x509.GeneralName] = (
            [x509.UniformResourceIdentifier(f"urn:bidui:department:{department}")]
            if department
            else []
        )
        return self.issue(
            department or "nobody",
            names,
            [CLIENT_AUTH] if usages is None else usages,
            not_before=not_before,
            lifetime=lifetime,
        )

    def node(self) -> Issued:
        """A node's server certificate for ``node.test`` and 127.0.0.1."""
        return self.issue(
            NODE_NAME,
            [x509.DNSName(NODE_NAME), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))],
            [SERVER_AUTH],
        )
