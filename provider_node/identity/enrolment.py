"""Enrolment and revocation of department certificates, each an audited governance action.

```
department (its own machine)            provider's operator                 every node process
bidui keys request --department D  -->  bidui provider pki sign D.csr  -->  (serial recorded)
   key stays in the department's dir    certificate + audit record
                                        bidui provider pki revoke SERIAL --reason …
                                        revocation + audit record, one transaction
                                                                            RevocationList sees it
                                                                            within a second
```

The certificate table is the node's register of what its CA issued; a revocation is a row in it
and is read by every node process sharing the database (``auth.RevocationList``).
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Sequence

from cryptography import x509
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from provider_node.audit.log import AuditLog
from provider_node.audit.records import AuditEntry
from provider_node.core.errors import StateConflictError, UnknownRecordError
from provider_node.core.vocabulary import Action
from provider_node.identity.auth import MAX_CERTIFICATE_LIFETIME
from provider_node.identity.certificates import (
    get_certificate,
    of_the_same_key,
    record_certificate,
    valid_for_key,
)
from provider_node.identity.certificates import revoke_certificate as _revoke_row
from provider_node.identity.names import (
    certificate_fingerprint,
    department_from_certificate,
    key_fingerprint,
    serial_hex,
)
from provider_node.identity.pki import CERT_VALIDITY, CertificateAuthority, sign_client_request
from provider_node.store.models import Certificate

__all__ = ["certificates", "revoke", "sign"]


def _row_arguments(certificate: x509.Certificate, now: _dt.datetime) -> dict[str, object]:
    return {
        "serial": serial_hex(certificate),
        "department": department_from_certificate(certificate),
        "fingerprint_sha256": certificate_fingerprint(certificate),
        "key_sha256": key_fingerprint(certificate),
        "not_before": certificate.not_valid_before_utc,
        "not_after": certificate.not_valid_after_utc,
        "issued_at": now,
    }


def sign(
    ca: CertificateAuthority,
    request_pem: bytes,
    audit: AuditLog,
    *,
    operator: str,
    now: _dt.datetime,
    department: str | None = None,
    validity: _dt.timedelta = CERT_VALIDITY,
    renew: bool = False,
) -> x509.Certificate:
    """Sign a department's CSR, register the certificate and audit the signing, atomically.

    A key that already has a valid certificate here is refused (``StateConflictError``) unless
    ``renew``: a second certificate for one key, signed unawares, would outlive the revocation of
    the first. Revoking either revokes both (``revoke``).
    """
    if validity > MAX_CERTIFICATE_LIFETIME:
        raise ValueError(
            f"a client certificate may be valid at most {MAX_CERTIFICATE_LIFETIME.days} days"
        )
    certificate = sign_client_request(
        ca, request_pem, department=department, validity=validity, now=now
    )
    row = _row_arguments(certificate, now)

    def register(session: Session) -> AuditEntry:
        if not renew:
            current = valid_for_key(session, str(row["key_sha256"]), now)
            if current:
                first = current[0]
                raise StateConflictError(
                    f"this key already has a valid certificate here (serial {first.serial}, "
                    f"department {first.department}, until {first.not_after:%Y-%m-%d}): sign "
                    "again with --renew to issue a second one for the same key, or ask for a "
                    "request made with a new key"
                )
        record_certificate(session, **row)  # type: ignore[arg-type]
        return AuditEntry.answered(
            Action.CERTIFICATE_SIGNING,
            requester=operator,
            cert_serial=str(row["serial"]),
            cert_fingerprint=str(row["fingerprint_sha256"]),
            reason=(
                f"client certificate for department {row['department']}, valid until "
                f"{certificate.not_valid_after_utc:%Y-%m-%dT%H:%M:%SZ}"
            ),
        )

    audit.append_action(register)
    return certificate


def revoke(
    audit: AuditLog,
    certificate: x509.Certificate | str,
    reason: str,
    *,
    operator: str,
    now: _dt.datetime,
) -> str:
    """Revoke a certificate (parsed, or the serial of one this node registered); returns the serial.

    A certificate this node never registered (made by ``provider init --client`` for development)
    is registered and revoked in one step when it is given whole.
    """
    if not reason.strip():
        raise ValueError("a revocation needs a reason (it is kept in the audit log)")
    row = _row_arguments(certificate, now) if isinstance(certificate, x509.Certificate) else None
    serial = str(row["serial"]) if row else certificate.lower()  # type: ignore[union-attr]

    def mark(session: Session) -> list[AuditEntry]:
        if row is not None:
            try:
                get_certificate(session, serial)
            except UnknownRecordError:
                record_certificate(session, **row)  # type: ignore[arg-type]
        revoked = _revoke_row(session, serial, reason.strip(), now)
        # A revocation is of the key: every other certificate of it goes with this one. Each is
        # a record of its own in the hash chain, so the node holds every one of them revoked
        # even if the certificates table is edited back (RevocationList reads both).
        also = [
            _revoke_row(session, other.serial, reason.strip(), now)
            for other in of_the_same_key(session, revoked)
        ]
        return [
            AuditEntry.answered(
                Action.CERTIFICATE_REVOCATION,
                requester=operator,
                cert_serial=certificate.serial,
                cert_fingerprint=certificate.fingerprint_sha256,
                reason=(
                    f"department {certificate.department}"
                    + (f" (with {serial}, of the same key)" if certificate is not revoked else "")
                    + f": {reason.strip()}"
                )[:300],
            )
            for certificate in (revoked, *also)
        ]

    audit.append_all(mark)
    return serial


def certificates(sessions: sessionmaker[Session]) -> Sequence[Certificate]:
    """Every certificate the node registered, newest first (detached, read-only)."""
    with sessions() as session:
        rows = session.scalars(select(Certificate).order_by(Certificate.issued_at.desc())).all()
        session.expunge_all()
        return rows
