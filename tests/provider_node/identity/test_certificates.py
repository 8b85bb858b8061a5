"""Issued certificates and their revocations, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from provider_node.core import errors
from provider_node.identity.certificates import (
    get_certificate,
    record_certificate,
    revoke_certificate,
    revoked_serials,
    serial_hex,
)
from provider_node.transport import status

ISSUED = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def record(session: Session, serial: int | str, number: int = 1) -> None:
    record_certificate(
        session,
        serial=serial,
        department="luzhou-civil-affairs",
        fingerprint_sha256=f"{number:02x}" * 32,
        not_before=ISSUED - timedelta(minutes=5),
        not_after=ISSUED + timedelta(days=365),
        issued_at=ISSUED,
    )


def test_serial_spellings_meet_in_one_form() -> None:
    assert serial_hex(0x0ABC) == serial_hex("0ABC") == serial_hex("abc") == "abc"
    assert serial_hex(2**159 + 1) == format(2**159 + 1, "x")
    for bad in (0, -1, 2**160, "", "xyz", "0x1f", "1" * 41, True):
        with pytest.raises(ValueError):
            serial_hex(bad)


def test_record_revoke_and_list(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        record(session, 0x1F, 1)
        record(session, "00AB", 2)
        record(session, 0xCD, 3)
    assert _revoked(sessions) == set()

    later = datetime(2026, 5, 1, 18, 0, tzinfo=timezone(timedelta(hours=8)))
    with sessions.begin() as session:
        revoked = revoke_certificate(session, "1F", "  key lost by the department  ", later)
        assert revoked.revocation_reason == "key lost by the department"
    with sessions.begin() as session:
        revoke_certificate(session, 0xAB, "department merged", later)

    assert _revoked(sessions) == {"1f", "ab"}
    with sessions() as session:
        kept = get_certificate(session, 0x1F)
        assert kept.revoked_at == later.astimezone(UTC)
        assert kept.revoked_at.tzinfo is UTC
        assert kept.issued_at == ISSUED
        assert get_certificate(session, "cd").revoked_at is None


def test_revocation_is_refused_without_reason_twice_or_for_unknown(
    sessions: sessionmaker[Session],
) -> None:
    with sessions.begin() as session:
        record(session, 7)
    with sessions.begin() as session, pytest.raises(errors.InvalidRequestError, match="reason"):
        revoke_certificate(session, 7, "   ", ISSUED)
    with sessions.begin() as session:
        revoke_certificate(session, 7, "compromised", ISSUED)
    with sessions.begin() as session, pytest.raises(errors.StateConflictError) as conflict:
        revoke_certificate(session, 7, "again", ISSUED + timedelta(days=1))
    assert "already revoked" in str(conflict.value)
    with sessions.begin() as session, pytest.raises(errors.UnknownRecordError) as unknown:
        revoke_certificate(session, 8, "never issued", ISSUED)
    assert status.status_code(conflict.value).name == "FAILED_PRECONDITION"
    assert status.status_code(unknown.value).name == "NOT_FOUND"
    with sessions() as session:  # the first revocation is kept
        assert get_certificate(session, 7).revocation_reason == "compromised"


def test_record_is_validated(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        record(session, 1, 1)
    with sessions.begin() as session, pytest.raises(errors.StateConflictError):
        record(session, "01", 2)
    with pytest.raises(IntegrityError), sessions.begin() as session:
        record(session, 2, 1)  # the same fingerprint under another serial
    with sessions.begin() as session:
        for changes in (
            {"department": "Not A Department"},
            {"fingerprint_sha256": "AB" * 32},
            {"not_after": ISSUED - timedelta(days=1)},
            {"issued_at": datetime(2026, 3, 2, 9, 0)},  # naive
        ):
            fields = {
                "serial": 3,
                "department": "luzhou-civil-affairs",
                "fingerprint_sha256": "cd" * 32,
                "not_before": ISSUED,
                "not_after": ISSUED + timedelta(days=1),
                "issued_at": ISSUED,
                **changes,
            }
            with pytest.raises(ValueError):
                record_certificate(session, **fields)  # type: ignore[arg-type]


def _revoked(sessions: sessionmaker[Session]) -> set[str]:
    with sessions() as session:
        return revoked_serials(session)
