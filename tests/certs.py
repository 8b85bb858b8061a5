"""Client certificates of every shape a test needs, signed by a real CA with ``cryptography``."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from provider_node.identity.names import DEPARTMENT_URN_PREFIX
from provider_node.identity.pki import CertificateAuthority

_NO_USAGE = {
    name: False
    for name in (
        "content_commitment",
        "key_encipherment",
        "data_encipherment",
        "key_agreement",
        "key_cert_sign",
        "crl_sign",
        "encipher_only",
        "decipher_only",
    )
}


def odd_client_cert(
    ca: CertificateAuthority,
    directory: Path,
    name: str,
    *,
    department: str | None = None,
    extended_usage: list[x509.ObjectIdentifier] | None = None,
    digital_signature: bool = True,
    lifetime: dt.timedelta = dt.timedelta(days=30),
    names: list[x509.GeneralName] | None = None,
    is_ca: bool = False,
    signer: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None = None,
) -> tuple[Path, Path, x509.Certificate]:
    """A certificate from ``ca`` for ``name``; ``department`` None means no URN SAN at all.

    ``extended_usage`` None leaves the EKU extension out; [] is not allowed by X.509.
    ``names`` replaces the subject alternative names (a DNS name and the department URN);
    ``is_ca`` makes it a CA certificate; ``signer`` (issuer name, key) signs it instead of ``ca``.
    """
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    sans: list[x509.GeneralName] = [x509.DNSName(f"{name}.example")]
    if department is not None:
        sans.append(x509.UniformResourceIdentifier(DEPARTMENT_URN_PREFIX + department))
    if names is not None:
        sans = names
    issuer_name, issuer_key = signer or (ca.certificate.subject, ca.private_key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + lifetime)
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=digital_signature, **{**_NO_USAGE, "key_cert_sign": is_ca}
            ),
            critical=True,
        )
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False,
        )
    )
    if extended_usage is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage(extended_usage), critical=False)
    cert = builder.sign(issuer_key, hashes.SHA256())
    cert_path, key_path = directory / f"{name}.pem", directory / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path, cert


def key_of(key_path: Path) -> ec.EllipticCurvePrivateKey:
    """The private key ``odd_client_cert`` wrote, to sign with it."""
    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return key


CLIENT_AUTH = [ExtendedKeyUsageOID.CLIENT_AUTH]
SERVER_AUTH = [ExtendedKeyUsageOID.SERVER_AUTH]
