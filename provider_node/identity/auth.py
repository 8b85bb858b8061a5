"""Who is calling: the department named by the verified client certificate (article 34).

grpcio's own mutual TLS (``require_client_auth=True``, see ``server.py``) has already checked in the
handshake that the peer holds the private key of a certificate that chains to the node's CA and is
valid now. A peer without such a certificate never gets an RPC through: it sees UNAVAILABLE, which
is the gRPC ecosystem's convention for a refused mutual-TLS handshake, and nothing reaches the
audit log (whose records are every department's comparisons, not an anonymous flood's).

What OpenSSL does not check, ``Authenticator.caller`` does on every RPC, from
``context.auth_context()``::

    x509_pem_cert --parse once (cached)--> department   the one urn:bidui:department:<id> URI SAN
                                           usage        clientAuth EKU alone, digitalSignature
                                           issuer       the node's CA itself, and not a CA
                                           lifetime     not longer than the ceiling
                  --every call----------->  valid now   a connection may outlive its certificate
                                           revoked?    RevocationList, refreshed every half second

A certificate that fails any of these raises ``UnauthenticatedError`` carrying the reason, the
serial and the fingerprint: the node audits it, because the certificate was issued by this node's
CA and its holder is a known party.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import cast

import grpc
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

from provider_node.core.chores import Periodic
from provider_node.core.errors import AuditUnavailableError, UnauthenticatedError
from provider_node.identity.names import (
    CertificateIdentityError,
    department_from_extensions,
    serial_hex,
)

__all__ = [
    "MAX_CERTIFICATE_LIFETIME",
    "Authenticator",
    "Caller",
    "CertificateFacts",
    "RevocationList",
    "certificate_facts",
]

#: The longest lifetime a client certificate may have: a leaked key is bounded in time even where
#: nobody revokes it (CA/Browser Forum's ceiling for public TLS certificates is 398 days).
MAX_CERTIFICATE_LIFETIME = _dt.timedelta(days=398)
_CACHE_SIZE = 4096


@dataclass(frozen=True)
class Caller:
    """The requesting department, as its client certificate names it (article 34)."""

    department: str
    cert_fingerprint: str
    cert_serial: str = ""


@dataclass(frozen=True)
class CertificateFacts:
    """What one client certificate says, checked once: an identity or the reason there is none."""

    serial: str
    fingerprint: str
    not_before: _dt.datetime
    not_after: _dt.datetime
    department: str | None
    problem: str | None


def _utc(moment: _dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _identity_problem(
    cert: x509.Certificate, max_lifetime: _dt.timedelta, issuer: x509.Certificate | None
) -> str | None:
    try:
        usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        usage = None
    # Required, not merely "if present": a certificate without an EKU is good for anything,
    # including a TLS server impersonating a node.
    if usage is None or ExtendedKeyUsageOID.CLIENT_AUTH not in usage:
        return "the client certificate is not issued for client authentication (no clientAuth EKU)"
    if list(usage) != [ExtendedKeyUsageOID.CLIENT_AUTH]:
        return (
            "the client certificate is issued for more than client authentication: a "
            "department's certificate has the clientAuth EKU and no other"
        )
    try:
        is_ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        is_ca = False
    if is_ca:
        return "the client certificate is a CA certificate (CA:TRUE): it may not sign in as one"
    if issuer is not None:
        try:
            cert.verify_directly_issued_by(issuer)
        except (ValueError, TypeError, InvalidSignature):
            return (
                "the client certificate was not issued by this node's CA itself (another "
                "certificate signed it): ask the provider's operator for one"
            )
    try:
        key_usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        key_usage = None
    if key_usage is None or not key_usage.digital_signature:
        return "the client certificate's key usage does not include digitalSignature"
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    if lifetime > max_lifetime:
        return (
            f"the client certificate is valid for {lifetime.days} days; this node accepts at most "
            f"{max_lifetime.days}: ask the provider for a new one"
        )
    return None


def _department(cert: x509.Certificate) -> tuple[str | None, str | None]:
    try:
        return department_from_extensions(cert.extensions), None
    except CertificateIdentityError as problem:
        return None, f"the client certificate {problem}"


def certificate_facts(
    pem: bytes,
    *,
    max_lifetime: _dt.timedelta = MAX_CERTIFICATE_LIFETIME,
    issuer: x509.Certificate | None = None,
) -> CertificateFacts:
    """Parse and check a client certificate (PEM) except for time and revocation; ``issuer``,
    the node's CA certificate, must have signed it itself (no intermediate)."""
    cert = x509.load_pem_x509_certificate(pem)
    fingerprint = hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()
    department, problem = _department(cert)
    problem = _identity_problem(cert, max_lifetime, issuer) or problem
    return CertificateFacts(
        serial=serial_hex(cert),
        fingerprint=fingerprint,
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        department=department if problem is None else None,
        problem=problem,
    )


class RevocationList:
    """The serials this node refuses, refreshed from the shared database every ``interval``.

    Every node process sharing the database refreshes its own copy, so a revocation takes effect
    everywhere within about ``interval`` seconds, on connections already open as well (the check
    runs per RPC). If the list cannot be refreshed for ``max_stale`` seconds the node fails closed:
    a revocation it cannot see must not let a revoked certificate through.
    """

    def __init__(
        self,
        load: Callable[[], Collection[str]],
        *,
        interval: float = 0.5,
        max_stale: float = 30.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._load = load
        self._max_stale = max_stale
        self._monotonic = monotonic
        self._serials: frozenset[str] = frozenset()
        self._loaded_at: float | None = None
        self._refresher = Periodic(
            "bidui-revocations", "refresh the certificate revocation list", self.refresh, interval
        )

    def refresh(self) -> None:
        """Load the list now; raises what the store raises."""
        serials = frozenset(self._load())
        self._serials, self._loaded_at = serials, self._monotonic()

    def start(self) -> None:
        """Load once (raising if the store is unreachable), then refresh in the background."""
        self.refresh()
        self._refresher.start()

    def stop(self) -> None:
        self._refresher.stop(timeout=5)

    def is_revoked(self, serial: str) -> bool:
        loaded = self._loaded_at
        if loaded is None or self._monotonic() - loaded > self._max_stale:
            raise AuditUnavailableError(
                "the node cannot read its certificate revocation list, so it answers no one; "
                "retry later"
            )
        return serial in self._serials


class Authenticator:
    """Turns an RPC's TLS peer into a ``Caller``, or refuses it with the reason."""

    def __init__(
        self,
        revocations: RevocationList,
        *,
        max_lifetime: _dt.timedelta = MAX_CERTIFICATE_LIFETIME,
        issuer: x509.Certificate | None = None,
        clock: Callable[[], _dt.datetime] = lambda: _dt.datetime.now(_dt.UTC),
    ) -> None:
        """``issuer`` is the node's CA certificate: a client certificate must be signed by it
        directly. OpenSSL has checked the chain in the handshake; this check refuses a chain
        through another certificate (a CA:TRUE leaf signing for a department it is not)."""
        self._revocations = revocations
        self._max_lifetime = max_lifetime
        self._issuer = issuer
        self._clock = clock
        self._cache: OrderedDict[bytes, CertificateFacts] = OrderedDict()
        self._lock = threading.Lock()

    def _facts(self, pem: bytes) -> CertificateFacts:
        with self._lock:
            facts = self._cache.get(pem)
            if facts is not None:
                self._cache.move_to_end(pem)
                return facts
        facts = certificate_facts(pem, max_lifetime=self._max_lifetime, issuer=self._issuer)
        with self._lock:
            self._cache[pem] = facts
            while len(self._cache) > _CACHE_SIZE:
                self._cache.popitem(last=False)
        return facts

    def caller(self, context: grpc.ServicerContext) -> Caller:
        """The verified department behind this RPC; raises ``UnauthenticatedError`` otherwise."""
        # grpcio gives a list of PEM bytes (the stubs say otherwise).
        certificates = cast(list[bytes], context.auth_context().get("x509_pem_cert") or [])
        if not certificates:
            # Only reachable through a server without mutual TLS (a misconfiguration).
            raise UnauthenticatedError("no client certificate")
        return self.identify(certificates[0])

    def identify(self, pem: bytes) -> Caller:
        facts = self._facts(pem)
        refuse = _refusal(facts)
        if facts.problem is not None or facts.department is None:
            raise refuse(facts.problem or "the client certificate names no department")
        now = self._clock()
        if now >= facts.not_after:
            raise refuse(f"the client certificate expired at {_utc(facts.not_after)}")
        if now < facts.not_before:
            raise refuse(f"the client certificate is valid only from {_utc(facts.not_before)}")
        if self._revocations.is_revoked(facts.serial):
            raise refuse(
                f"the client certificate (serial {facts.serial}) has been revoked by the provider"
            )
        return Caller(facts.department, facts.fingerprint, facts.serial)


def _refusal(facts: CertificateFacts) -> Callable[[str], UnauthenticatedError]:
    def make(reason: str) -> UnauthenticatedError:
        return UnauthenticatedError(
            reason, cert_fingerprint=facts.fingerprint, cert_serial=facts.serial
        )

    return make
