"""Signed checkpoints of the audit chain head, kept outside the database (article 35).

The hash chain catches any edit, deletion or insertion inside the log, but not its tail cut off
together with the chain head rewound to match: the shortened log is a valid chain. A checkpoint is
the head (seq, record hash) at a moment, signed with the node's Ed25519 checkpoint key and appended
to a file outside the database (and, as the operator's routine, sent on to the compliance office):

    {"seq": 1041, "record_hash": "9f…", "at": "2026-11-29T16:00:00Z", "public_key": "…",
     "signature": "…"}     signature = Ed25519(key, "bidui-checkpoint-v1" || canonical JSON of
                                                   seq, record_hash and at)

``verify_checkpoints`` then holds the log to every checkpoint: the record at each checkpoint's seq
must still exist with that hash, so a log cut back before the latest checkpoint is reported with
the time the missing records were vouched for.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import select
from sqlalchemy.orm import Session

from provider_node.audit.log import AuditLog
from provider_node.core.chores import Periodic
from provider_node.resources.keys import read_secret_file, write_secret_file
from provider_node.store.engine import read_only_session
from provider_node.store.models import HEAD_ROW_ID, AuditChainHead, AuditRecord

__all__ = [
    "CHECKPOINT_FILE",
    "CHECKPOINT_KEY_FILE",
    "CheckpointReport",
    "Checkpointer",
    "load_signing_key",
    "verify_checkpoints",
    "write_checkpoint",
]

CHECKPOINT_KEY_FILE = "checkpoint_ed25519"
#: In the node's data directory, outside the database it vouches for.
CHECKPOINT_FILE = "audit-checkpoints.jsonl"
#: A checkpoint every ten minutes (when the log has grown): what a cut can hide is that much.
CHECKPOINT_INTERVAL_S = 600.0
_DOMAIN = b"bidui-checkpoint-v1"


def load_signing_key(keys_dir: Path, *, create: bool = True) -> Ed25519PrivateKey:
    """The node's checkpoint key (raw 32 bytes, mode 0600), made on first use when ``create``."""
    path = keys_dir / CHECKPOINT_KEY_FILE
    if create and not path.exists():
        keys_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_secret_file(path, Ed25519PrivateKey.generate().private_bytes_raw())
    return Ed25519PrivateKey.from_private_bytes(read_secret_file(path, 32))


def _message(seq: int, record_hash: str, at: str) -> bytes:
    body = json.dumps({"at": at, "record_hash": record_hash, "seq": seq}, sort_keys=True)
    return _DOMAIN + body.encode("utf-8")


def write_checkpoint(
    audit: AuditLog, key: Ed25519PrivateKey, path: Path, *, now: _dt.datetime
) -> dict[str, object] | None:
    """Sign the current chain head and append it to ``path`` (fsynced); None if the log is empty
    or the head is the one last checkpointed."""
    with read_only_session(audit.sessions) as session:
        head = session.get(AuditChainHead, HEAD_ROW_ID)
        seq, record_hash = (head.last_seq, head.last_hash) if head else (0, "")
    if seq == 0:
        return None
    if path.exists() and any(c["seq"] == seq for c in _read(path)):
        return None
    at = now.astimezone(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    public = key.public_key().public_bytes_raw()
    checkpoint: dict[str, object] = {
        "seq": seq,
        "record_hash": record_hash,
        "at": at,
        "public_key": public.hex(),
        "signature": key.sign(_message(seq, record_hash, at)).hex(),
    }
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(descriptor, (json.dumps(checkpoint, sort_keys=True) + "\n").encode())
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    return checkpoint


def _read(path: Path) -> Iterator[dict[str, object]]:
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            if line.strip():
                yield json.loads(line)


@dataclass(frozen=True)
class CheckpointReport:
    ok: bool
    checked: int
    reason: str


def verify_checkpoints(audit: AuditLog, path: Path, *, public_key: bytes) -> CheckpointReport:
    """Hold the log to every checkpoint in ``path``: signed under ``public_key`` (the one the
    compliance office keeps, or the node's own; never the key a checkpoint carries, which whoever
    rewrote the file would have put there), and the record at its seq still there with its hash.
    A log cut back before a checkpoint fails, naming when that part was vouched for."""
    try:
        checkpoints = list(_read(path))
    except (OSError, ValueError) as problem:
        return CheckpointReport(False, 0, f"cannot read the checkpoints in {path}: {problem}")
    with read_only_session(audit.sessions) as session:
        for number, checkpoint in enumerate(checkpoints, start=1):
            wrong = _check(session, checkpoint, public_key)
            if wrong is not None:
                return CheckpointReport(False, number - 1, f"checkpoint {number}: {wrong}")
    return CheckpointReport(True, len(checkpoints), "")


def _check(session: Session, checkpoint: dict[str, object], public_key: bytes) -> str | None:
    try:
        seq = int(str(checkpoint["seq"]))
        record_hash, at = str(checkpoint["record_hash"]), str(checkpoint["at"])
        key_bytes = bytes.fromhex(str(checkpoint["public_key"]))
        signature = bytes.fromhex(str(checkpoint["signature"]))
    except (KeyError, TypeError, ValueError):
        return "malformed"
    if key_bytes != public_key:
        return "signed with another key than the one given"
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(
            signature, _message(seq, record_hash, at)
        )
    except (InvalidSignature, ValueError):
        return "its signature does not verify: the checkpoint file was altered"
    stored = session.scalar(select(AuditRecord.record_hash).where(AuditRecord.seq == seq))
    if stored is None:
        return (
            f"the log no longer has record seq {seq}, which was vouched for at {at}: records "
            "were removed from its end"
        )
    if stored != record_hash:
        return f"record seq {seq} is not the one vouched for at {at}"
    return None


class Checkpointer(Periodic):
    """Signs the chain head every ``interval`` seconds, and once more at a graceful stop."""

    def __init__(
        self,
        audit: AuditLog,
        keys_dir: Path,
        data_dir: Path,
        *,
        clock: Callable[[], _dt.datetime],
        interval: float = CHECKPOINT_INTERVAL_S,
    ) -> None:
        key = load_signing_key(keys_dir)
        self.path = data_dir / CHECKPOINT_FILE

        def sign() -> None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_checkpoint(audit, key, self.path, now=clock())

        super().__init__("bidui-checkpoints", "sign an audit checkpoint", sign, interval)
