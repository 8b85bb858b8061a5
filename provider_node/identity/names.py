"""What a certificate names, read alike by the node's checks and the operator's PKI: the department
of its ``urn:bidui:department:<id>`` URI SAN, its serial, and the SHA-256 fingerprints of the
certificate and of its key. No chain check here: grpcio's mutual TLS and ``auth`` do that."""

from __future__ import annotations

import hashlib

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from provider_node.config import DEPARTMENT_ID_RE

__all__ = [
    "DEPARTMENT_URN_PREFIX",
    "CertificateIdentityError",
    "certificate_fingerprint",
    "department_from_certificate",
    "department_from_extensions",
    "key_fingerprint",
    "serial_hex",
]

DEPARTMENT_URN_PREFIX = "urn:bidui:department:"


class CertificateIdentityError(ValueError):
    """A certificate carries no usable department identity, or contradictory ones."""


def _load_certificate(certificate: bytes | x509.Certificate) -> x509.Certificate:
    if isinstance(certificate, x509.Certificate):
        return certificate
    try:
        if certificate.lstrip().startswith(b"-----BEGIN"):
            return x509.load_pem_x509_certificate(certificate)
        return x509.load_der_x509_certificate(certificate)
    except ValueError:
        raise CertificateIdentityError("is not a valid X.509 certificate") from None


def department_from_extensions(extensions: x509.Extensions) -> str:
    """The department a certificate or CSR names: its one ``urn:bidui:department:<id>`` URI SAN,
    which must be its only subject alternative name.

    Nothing else names a department: a subject CN is a display name that any CA may fill freely.
    A URN prefix in another case is a second claim, not a spelling: URN prefixes compare
    case-insensitively (RFC 8141), so such a certificate names two departments and is refused,
    never read as the one in the expected case. Any other name (a DNS name, an address, another
    URI) would let the certificate serve as something else as well, and is refused too.
    """
    try:
        names = list(extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
    except x509.ExtensionNotFound:
        names = []
    prefix = DEPARTMENT_URN_PREFIX.lower()
    claims = [
        name.value
        for name in names
        if isinstance(name, x509.UniformResourceIdentifier)
        and name.value.lower().startswith(prefix)
    ]
    if not claims:
        raise CertificateIdentityError(
            f"names no department: it has no {DEPARTMENT_URN_PREFIX}<id> URI SAN"
        )
    if len(claims) > 1:
        raise CertificateIdentityError("names more than one department")
    if len(names) > 1:
        raise CertificateIdentityError(
            "has subject alternative names besides its department URN (DNS names, addresses or "
            "other URIs): a department's certificate names its department and nothing else"
        )
    if not claims[0].startswith(DEPARTMENT_URN_PREFIX):
        raise CertificateIdentityError(
            f"spells its department URN other than {DEPARTMENT_URN_PREFIX}<id> (in lowercase)"
        )
    department = claims[0][len(DEPARTMENT_URN_PREFIX) :]
    if not DEPARTMENT_ID_RE.fullmatch(department):
        raise CertificateIdentityError("has a department URN that is not a valid department id")
    return department


def department_from_certificate(certificate: bytes | x509.Certificate) -> str:
    """The department a client certificate (DER, PEM or parsed) stands for; no chain check."""
    return department_from_extensions(_load_certificate(certificate).extensions)


def serial_hex(certificate: x509.Certificate) -> str:
    """The serial number as lowercase hex without leading zeros: how bidui names a certificate."""
    return format(certificate.serial_number, "x")


def certificate_fingerprint(certificate: bytes | x509.Certificate) -> str:
    """SHA-256 of the certificate's DER encoding, lowercase hex (PEM and parsed input accepted)."""
    if isinstance(certificate, bytes) and not certificate.lstrip().startswith(b"-----BEGIN"):
        return hashlib.sha256(certificate).hexdigest()
    der = _load_certificate(certificate).public_bytes(serialization.Encoding.DER)
    return hashlib.sha256(der).hexdigest()


def key_fingerprint(certificate: x509.Certificate | x509.CertificateSigningRequest) -> str:
    """SHA-256 of the public key (SubjectPublicKeyInfo, DER): what every certificate of one key
    shares, whatever its serial."""
    der = certificate.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).hexdigest()
