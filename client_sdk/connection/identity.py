"""What the SDK checks of its own client certificate before it connects (article 34).

A node with grpc's mutual TLS refuses a certificate it does not accept by closing the connection
during or right after the TLS handshake, with no reason the client can read (with TLS 1.3 the
requester's first RPC just sees "Socket closed"). So the requester checks what it can itself,
and says which file is wrong and how to fix it:

- the certificate is valid now (not expired, not yet valid) on this machine's clock;
- it is issued for client authentication (the clientAuth extended key usage);
- it names exactly one department, as a ``urn:bidui:department:<id>`` URI SAN: the node knows
  the requester by nothing else;
- it chains to the CA certificate the SDK was given, checked by ``cryptography``'s X.509
  verifier (the same CA verifies the node's own certificate, and the node's operator signs
  departments' certificates with it);
- the private key belongs to the certificate.

What it cannot check: whether the node trusts the same CA for its clients, whether the node has
revoked the certificate, and the node's clock. Those show up as a refusal when connecting
(``client_sdk.connection_failures``).
"""

from __future__ import annotations

import datetime as _dt
import re
from collections.abc import Sequence

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificatePublicKeyTypes,
    PrivateKeyTypes,
    PublicKeyTypes,
)
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from client_sdk.errors import CredentialsError

__all__ = ["DEPARTMENT_ID", "DEPARTMENT_URN_PREFIX", "check_client_certificate"]

DEPARTMENT_URN_PREFIX = "urn:bidui:department:"
# The node's rule for a department id (provider_node.config.DEPARTMENT_ID_RE); the SDK does not
# import the node, so the rule is stated again here.
DEPARTMENT_ID = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
_ASK_OPERATOR = "ask the node's operator to sign a new certificate request for your department"


def check_client_certificate(
    chain: Sequence[x509.Certificate],
    ca_certificates: Sequence[x509.Certificate],
    private_key: PrivateKeyTypes,
    *,
    certificate_name: str,
    ca_name: str,
    key_name: str,
    now: _dt.datetime,
) -> str:
    """Check the client certificate ``chain[0]`` (``chain[1:]`` are intermediates) at ``now``.

    Returns the department the certificate names. Raises :class:`CredentialsError` naming the
    input at fault (``certificate_name`` such as "client certificate file 'dept.pem'", and so on)
    and what to do about it.
    """
    certificate = chain[0]
    _check_validity(certificate, certificate_name, now)
    _check_client_usage(certificate, certificate_name)
    department = _department(certificate, certificate_name)
    _check_chain(certificate, chain[1:], ca_certificates, certificate_name, ca_name, now)
    if _public_bytes(private_key.public_key()) != _public_bytes(certificate.public_key()):
        raise CredentialsError(
            f"{key_name} does not belong to {certificate_name}: give the key that was made "
            "with this certificate's request"
        )
    return department


def _check_validity(certificate: x509.Certificate, where: str, now: _dt.datetime) -> None:
    if now > certificate.not_valid_after_utc:
        raise CredentialsError(
            f"{where} expired on {_when(certificate.not_valid_after_utc)}: {_ASK_OPERATOR}"
        )
    if now < certificate.not_valid_before_utc:
        raise CredentialsError(
            f"{where} is not valid before {_when(certificate.not_valid_before_utc)}: check this "
            "machine's clock, or wait until then"
        )


def _check_client_usage(certificate: x509.Certificate, where: str) -> None:
    try:
        usages = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        usages = None
    if usages is None or ExtendedKeyUsageOID.CLIENT_AUTH not in usages:
        raise CredentialsError(
            f"{where} is not issued for client authentication (it lacks the clientAuth extended "
            f"key usage), so the node refuses it: {_ASK_OPERATOR}"
        )


def _department(certificate: x509.Certificate, where: str) -> str:
    try:
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        uris = names.get_values_for_type(x509.UniformResourceIdentifier)
    except x509.ExtensionNotFound:
        uris = []
    prefix = DEPARTMENT_URN_PREFIX
    departments = [uri[len(prefix) :] for uri in uris if uri.startswith(prefix)]
    if not departments:
        problem = f"names no department (it has no {prefix}<id> URI SAN)"
    elif len(departments) > 1:
        problem = "names more than one department"
    elif not DEPARTMENT_ID.fullmatch(departments[0]):
        problem = f"names department {departments[0]!r}, which is not a valid department id"
    else:
        return departments[0]
    raise CredentialsError(
        f"{where} {problem}; the node knows a department by that name only: {_ASK_OPERATOR}"
    )


def _check_chain(
    certificate: x509.Certificate,
    intermediates: Sequence[x509.Certificate],
    ca_certificates: Sequence[x509.Certificate],
    where: str,
    ca_name: str,
    now: _dt.datetime,
) -> None:
    verifier = PolicyBuilder().store(Store(list(ca_certificates))).time(now)
    try:
        verifier.build_client_verifier().verify(certificate, list(intermediates))
    except VerificationError as exc:
        issuer = certificate.issuer.rfc4514_string()
        held = ", ".join(repr(ca.subject.rfc4514_string()) for ca in ca_certificates)
        raise CredentialsError(
            f"{where} (issued by {issuer!r}) does not chain to {ca_name} (which holds {held}): "
            f"{_reason(exc)}. Give the CA certificate of the node you connect to, or have the "
            "node's operator sign your certificate request with it"
        ) from None


def _reason(error: VerificationError) -> str:
    """The verifier's reason without the certificate dump it appends."""
    text = str(error).split(" (encountered processing", 1)[0]
    text = text.removeprefix("validation failed: ")
    if text.startswith("candidates exhausted"):  # no certificate in the store issued it
        return "none of them issued it"
    return text


def _when(moment: _dt.datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def _public_bytes(key: PublicKeyTypes | CertificatePublicKeyTypes) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
