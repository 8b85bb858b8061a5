"""Signed checkpoints catch what the hash chain cannot: the newest records cut off with the head."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

from provider_node.audit.checkpoints import (
    CHECKPOINT_KEY_FILE,
    load_signing_key,
    verify_checkpoints,
    write_checkpoint,
)
from provider_node.audit.log import AuditLog
from provider_node.audit.records import AuditEntry
from provider_node.resources.keys import KeyStoreError

T0 = dt.datetime(2026, 3, 2, 8, 0, tzinfo=dt.UTC)


def _fill(log: AuditLog, count: int) -> None:
    for number in range(count):
        log.append(
            AuditEntry(action="comparison", outcome="answered", status_code="OK",
                       requester="tax-bureau", item_count=number)
        )  # fmt: skip


def test_a_cut_tail_with_a_rewound_head_is_caught(
    sessions: sessionmaker[Session], engine: Engine, tmp_path: Path
) -> None:
    log = AuditLog(sessions)
    key = load_signing_key(tmp_path / "keys")
    assert (tmp_path / "keys" / CHECKPOINT_KEY_FILE).stat().st_mode & 0o777 == 0o600
    path = tmp_path / "checkpoints.jsonl"
    assert write_checkpoint(log, key, path, now=T0) is None  # an empty log: nothing to vouch for
    _fill(log, 5)
    first = write_checkpoint(log, key, path, now=T0)
    assert first is not None and first["seq"] == 5
    assert write_checkpoint(log, key, path, now=T0) is None  # the same head is not signed twice
    _fill(log, 3)
    write_checkpoint(log, key, path, now=T0 + dt.timedelta(minutes=10))
    assert verify_checkpoints(log, path, public_key=_public(key)).ok

    # Cut the newest three records and rewind the head to match: the chain alone looks whole.
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM audit_record WHERE seq > 5"))
        connection.execute(
            text(
                "UPDATE audit_chain_head SET last_seq = 5, "
                "last_hash = (SELECT record_hash FROM audit_record WHERE seq = 5)"
            )
        )
    assert log.verify().ok
    report = verify_checkpoints(log, path, public_key=_public(key))
    assert not report.ok and report.checked == 1
    assert "no longer has record seq 8" in report.reason
    assert "2026-03-02T08:10:00Z" in report.reason


def test_an_altered_checkpoint_or_another_key_is_refused(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    log = AuditLog(sessions)
    key = load_signing_key(tmp_path)
    path = tmp_path / "checkpoints.jsonl"
    _fill(log, 2)
    write_checkpoint(log, key, path, now=T0)
    public = key.public_key().public_bytes_raw()
    assert verify_checkpoints(log, path, public_key=public).ok
    assert "another key" in verify_checkpoints(log, path, public_key=bytes(32)).reason
    forged = json.loads(path.read_text())
    forged["seq"] = 1
    path.write_text(json.dumps(forged) + "\n")
    assert "signature does not verify" in verify_checkpoints(log, path, public_key=public).reason


def test_a_checkpoint_key_readable_by_others_is_refused(tmp_path: Path) -> None:
    load_signing_key(tmp_path / "keys")  # made on first use, mode 0600
    key_file = next((tmp_path / "keys").iterdir())
    assert key_file.stat().st_mode & 0o777 == 0o600
    key_file.chmod(0o644)
    with pytest.raises(KeyStoreError, match=r"readable by group or others \(mode 0644\)"):
        load_signing_key(tmp_path / "keys")


def _public(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes_raw()


def test_a_checkpoint_file_re_signed_with_another_key_is_caught(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    # What an insider with file access does: sign the log's head with a key of their own.
    log = AuditLog(sessions)
    key = load_signing_key(tmp_path)
    _fill(log, 2)
    forged = tmp_path / "forged.jsonl"
    write_checkpoint(log, Ed25519PrivateKey.generate(), forged, now=T0)
    report = verify_checkpoints(log, forged, public_key=_public(key))
    assert not report.ok and "another key" in report.reason
