"""The department client certificates the operator issued, and their revocations (article 34).

Storage only: issuing and checking certificates is ``provider_node.identity.pki``'s and ``auth``'s
work.
A serial number is kept as lowercase hex without leading zeros (``serial_hex``), so the serial of
a presented certificate (``cert.serial_number``) finds its row whatever spelling it arrived in.
The functions take a ``Session``; the caller owns the transaction (``with sessions.begin():``).
"""

from __future__ import annotations

import re
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from provider_node.config import DEPARTMENT_ID_RE
from provider_node.core import errors
from provider_node.core.vocabulary import Action, Outcome
from provider_node.core.workdays import as_utc
from provider_node.store.models import AuditRecord, Certificate

__all__ = [
    "get_certificate",
    "of_the_same_key",
    "record_certificate",
    "revocations_undone",
    "revoke_certificate",
    "revoked_in_chain",
    "revoked_serials",
    "serial_hex",
    "valid_for_key",
]

_HEX_RE = re.compile(r"[0-9a-fA-F]{1,40}")
_FINGERPRINT_RE = re.compile(r"[0-9a-f]{64}")
#: RFC 5280 4.1.2.2: a serial is a positive integer of at most 20 octets.
_MAX_SERIAL = 2 ** (8 * 20) - 1


def serial_hex(serial: int | str) -> str:
    """``serial`` (an integer, or hex text in any case, with or without leading zeros) as stored."""
    if isinstance(serial, str):
        if not _HEX_RE.fullmatch(serial):
            raise ValueError("a certificate serial is 1 to 40 hexadecimal digits")
        serial = int(serial, 16)
    if isinstance(serial, bool) or not 0 < serial <= _MAX_SERIAL:
        raise ValueError("a certificate serial is a positive integer of at most 20 octets")
    return format(serial, "x")


def record_certificate(
    session: Session,
    *,
    serial: int | str,
    department: str,
    fingerprint_sha256: str,
    not_before: datetime,
    not_after: datetime,
    issued_at: datetime,
    key_sha256: str | None = None,
) -> Certificate:
    """Keep a newly issued certificate; ``StateConflictError`` if its serial is already kept."""
    if not DEPARTMENT_ID_RE.fullmatch(department):
        raise ValueError(f"department must match {DEPARTMENT_ID_RE.pattern}")
    if not _FINGERPRINT_RE.fullmatch(fingerprint_sha256):
        raise ValueError("fingerprint_sha256 must be a lowercase SHA-256 hex digest")
    not_before, not_after, issued_at = as_utc(not_before), as_utc(not_after), as_utc(issued_at)
    if not not_before < not_after:
        raise ValueError("not_before must come before not_after")
    stored = serial_hex(serial)
    if session.get(Certificate, stored) is not None:
        raise errors.StateConflictError(f"certificate serial {stored} is already recorded")
    certificate = Certificate(
        serial=stored,
        department=department,
        fingerprint_sha256=fingerprint_sha256,
        key_sha256=key_sha256,
        not_before=not_before,
        not_after=not_after,
        issued_at=issued_at,
    )
    session.add(certificate)
    session.flush()
    return certificate


def get_certificate(
    session: Session, serial: int | str, *, for_update: bool = False
) -> Certificate:
    """The recorded certificate with ``serial``; ``UnknownRecordError`` if there is none.

    ``for_update`` locks its row until the transaction ends (PostgreSQL; SQLite writers are
    serialised by ``BEGIN IMMEDIATE`` anyway).
    """
    stored = serial_hex(serial)
    certificate = session.get(Certificate, stored, with_for_update=for_update)
    if certificate is None:
        raise errors.UnknownRecordError(f"no certificate with serial {stored} was issued here")
    return certificate


def valid_for_key(session: Session, key_sha256: str, now: datetime) -> list[Certificate]:
    """The certificates of the key ``key_sha256`` neither revoked nor expired at ``now``."""
    return list(
        session.scalars(
            select(Certificate)
            .where(
                Certificate.key_sha256 == key_sha256,
                Certificate.revoked_at.is_(None),
                Certificate.not_after > as_utc(now),
            )
            .order_by(Certificate.issued_at)
        )
    )


def of_the_same_key(session: Session, certificate: Certificate) -> list[Certificate]:
    """The other unrevoked certificates of ``certificate``'s key (none where it is unknown)."""
    if certificate.key_sha256 is None:
        return []
    return list(
        session.scalars(
            select(Certificate).where(
                Certificate.key_sha256 == certificate.key_sha256,
                Certificate.serial != certificate.serial,
                Certificate.revoked_at.is_(None),
            )
        )
    )


def revoke_certificate(
    session: Session, serial: int | str, reason: str, now: datetime
) -> Certificate:
    """Revoke a recorded certificate from ``now`` on, with a non-blank ``reason``.

    ``UnknownRecordError`` for a serial never recorded; ``StateConflictError`` if it is already
    revoked (the first revocation's time and reason are kept).
    """
    reason = reason.strip()
    if not reason:
        raise errors.InvalidRequestError("a revocation needs a reason")
    now = as_utc(now)
    certificate = get_certificate(session, serial, for_update=True)
    if certificate.revoked_at is not None:
        raise errors.StateConflictError(
            f"certificate {certificate.serial} was already revoked at "
            f"{certificate.revoked_at.isoformat()}"
        )
    certificate.revoked_at = now
    certificate.revocation_reason = reason
    session.flush()
    return certificate


def revoked_in_chain(session: Session, after_seq: int = 0) -> tuple[set[str], int]:
    """The serials the audit chain records as revoked after record ``after_seq``, and the last
    seq read (for the next call to go on from)."""
    last = max(session.scalar(select(func.max(AuditRecord.seq))) or 0, after_seq)
    serials = session.scalars(
        select(AuditRecord.cert_serial).where(
            AuditRecord.seq > after_seq,
            AuditRecord.seq <= last,
            AuditRecord.action == Action.CERTIFICATE_REVOCATION,
            AuditRecord.outcome == Outcome.ANSWERED,
        )
    )
    return {serial for serial in serials if serial}, last


def revocations_undone(session: Session) -> list[str]:
    """Certificates the audit chain records as revoked that the certificates table holds as
    valid: a revocation undone by editing the table."""
    in_chain, _ = revoked_in_chain(session)
    valid = session.scalars(
        select(Certificate.serial).where(
            Certificate.serial.in_(sorted(in_chain)), Certificate.revoked_at.is_(None)
        )
    )
    return sorted(valid)


def revoked_serials(session: Session) -> set[str]:
    """The serials (as ``serial_hex`` spells them) of every revoked certificate."""
    return set(
        session.scalars(select(Certificate.serial).where(Certificate.revoked_at.is_not(None)))
    )
