"""The audit record format (articles 34, 35): what a record holds, how it is hashed, how a chain
of records is checked, and the offline form of an export.

    hK = SHA-256( canonical JSON [ "bidui-audit-v2", [field, value], … ] )  over every field of
         record K, including seq and prev_hash (see ``HASHED_FIELDS``)

Records written before the certificate serial and the grant were recorded carry neither, and are
hashed as "bidui-audit-v1" over ``HASHED_FIELDS_V1``: which form applies follows from the record's
own content, so an edit that blanks the serial still breaks the hash. ``ChainChecker`` checks the
links (``seq``, ``prev_hash``, the chain head) on the database and on exports alike; writing and
reading the log in the store is ``provider_node.audit.log.AuditLog``.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import re
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, TextIO

from provider_node.core.vocabulary import Action, ComparisonMode, Outcome
from provider_node.store.models import GENESIS_HASH

__all__ = [
    "EXPORT_FIELDS",
    "HASHED_FIELDS",
    "HASHED_FIELDS_V1",
    "MIN_RETENTION_DAYS",
    "AuditEntry",
    "ChainChecker",
    "ChainReport",
    "ExportFormat",
    "canonical_record",
    "check_retention_days",
    "compute_record_hash",
    "read_export",
    "verify_export",
]

#: Article 35: logs are kept at least two years.
MIN_RETENTION_DAYS = 730

ExportFormat = Literal["jsonl", "csv"]

#: ``opened``: a blinded comparison's first step, recorded before its evaluations leave the node;
#: the comparison's own record (answered, refused, failed or abandoned) follows.
OUTCOMES = frozenset(Outcome)
MODES = frozenset({*ComparisonMode, ""})

_HASH_DOMAIN_V1 = "bidui-audit-v1"
_HASH_DOMAIN = "bidui-audit-v2"
#: The fields of the first record format, in the order they are serialised.
HASHED_FIELDS_V1: tuple[str, ...] = (
    "seq",
    "comparison_id",
    "occurred_at",
    "action",
    "requester",
    "cert_fingerprint",
    "resource_id",
    "comparison_key",
    "mode",
    "purpose",
    "item_count",
    "match_count",
    "outcome",
    "status_code",
    "reason",
    "request_id",
    "duration_ms",
    "payload_sha256",
    "prev_hash",
)
#: Fields added in v2: who vouched for the caller (certificate serial), under which grant, and the
#: comparison an opening record belongs to.
_V2_FIELDS = ("cert_serial", "grant_id", "related_id")
#: Every field covered by ``record_hash``, in the order they are serialised.
HASHED_FIELDS: tuple[str, ...] = (*HASHED_FIELDS_V1[:-1], *_V2_FIELDS, "prev_hash")
#: Columns of an export, in order: everything needed to check the chain offline.
EXPORT_FIELDS: tuple[str, ...] = (*HASHED_FIELDS, "record_hash")
_INT_FIELDS = frozenset({"seq", "item_count", "match_count"})
_FLOAT_FIELDS = frozenset({"duration_ms"})
_TIME_FIELDS = frozenset({"occurred_at"})

_ACTION_RE = re.compile(r"[a-z][a-z0-9_]{0,63}")
_STATUS_RE = re.compile(r"[A-Z][A-Z_]{0,31}")
_HEX64_RE = re.compile(r"[0-9a-f]{64}")
_SERIAL_RE = re.compile(r"[0-9a-f]{1,40}")  # RFC 5280: at most 20 octets


def check_retention_days(days: int) -> int:
    """``days`` if it keeps records at least two years (article 35); ValueError otherwise."""
    if isinstance(days, bool) or not isinstance(days, int) or days < MIN_RETENTION_DAYS:
        raise ValueError(
            f"audit retention must be at least {MIN_RETENTION_DAYS} days (article 35), got {days!r}"
        )
    return days


@dataclass(frozen=True, kw_only=True)
class AuditEntry:
    """What the caller knows about one comparison or governance action. Never a raw value.

    ``action`` is an ``Action``: "comparison" or a governance action ("hash_key_fetch",
    "index_load", "key_rotation", …); ``requester`` is the department id from the client
    certificate ("" if unauthenticated); ``status_code`` is the gRPC status name ("OK",
    "PERMISSION_DENIED").
    ``comparison_id`` may be left "" for ``AuditLog.append`` to assign a uuid4.
    """

    action: str
    outcome: str
    status_code: str
    requester: str = ""
    cert_fingerprint: str = ""
    cert_serial: str = ""
    grant_id: str = ""
    related_id: str = ""
    resource_id: str = ""
    comparison_key: str = ""
    mode: str = ""
    purpose: str = ""
    item_count: int = 0
    match_count: int = 0
    reason: str = ""
    request_id: str = ""
    duration_ms: float = 0.0
    payload_sha256: str = ""
    comparison_id: str = ""

    @classmethod
    def answered(cls, action: Action, **fields: str | int) -> AuditEntry:
        """The record of an ``action`` carried out (outcome answered, status OK)."""
        return cls(action=action, outcome=Outcome.ANSWERED, status_code="OK", **fields)  # type: ignore[arg-type]

    def __post_init__(self) -> None:
        if not _ACTION_RE.fullmatch(self.action):
            raise ValueError("action must be a short snake_case name")
        if self.outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {sorted(OUTCOMES)}")
        if not _STATUS_RE.fullmatch(self.status_code):
            raise ValueError("status_code must be a gRPC status name such as OK")
        if self.mode not in MODES:
            raise ValueError("mode must be 'hashed', 'blinded' or ''")
        for name in ("cert_fingerprint", "payload_sha256"):
            value = getattr(self, name)
            if value and not _HEX64_RE.fullmatch(value):
                raise ValueError(f"{name} must be a lowercase SHA-256 hex digest or ''")
        if self.cert_serial and not _SERIAL_RE.fullmatch(self.cert_serial):
            raise ValueError("cert_serial must be a certificate serial in lowercase hex or ''")
        for name in ("item_count", "match_count"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a non-negative integer")
        if self.match_count > self.item_count:
            raise ValueError("match_count cannot exceed item_count")
        if not math.isfinite(self.duration_ms) or self.duration_ms < 0:
            raise ValueError("duration_ms must be a finite non-negative number")
        object.__setattr__(self, "duration_ms", float(self.duration_ms))
        if self.comparison_id:
            try:
                canonical = str(uuid.UUID(self.comparison_id))
            except ValueError:
                raise ValueError("comparison_id must be a UUID") from None
            object.__setattr__(self, "comparison_id", canonical)
        for name in ("requester", "resource_id", "comparison_key", "purpose", "reason"):
            # PostgreSQL text cannot hold NUL; a refused request's fields come from the network.
            value = getattr(self, name)
            if "\x00" in value:
                object.__setattr__(self, name, value.replace("\x00", "\ufffd"))
        if "\x00" in self.request_id:
            object.__setattr__(self, "request_id", self.request_id.replace("\x00", "\ufffd"))


@dataclass(frozen=True)
class ChainReport:
    """The result of checking a chain: ``first_bad_seq`` names the first record that fails."""

    ok: bool
    records_checked: int
    first_bad_seq: int | None
    reason: str


def _format_time(value: object) -> str:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise ValueError("occurred_at must be a timezone-aware time")
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _canonical_value(name: str, value: object) -> str | int | float:
    """One field's value in the exact type it is hashed and exported as."""
    if name in _TIME_FIELDS:
        return _format_time(value)
    if name in _INT_FIELDS:
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise ValueError(f"{name} must be an integer")
        return int(value)
    if name in _FLOAT_FIELDS:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise ValueError(f"{name} must be a number")
        return float(value)
    if not isinstance(value, str):
        raise ValueError(f"{name} must be text")
    return value


def canonical_record(record: Mapping[str, object]) -> dict[str, str | int | float]:
    # An export made before v2 has no v2 columns: they read as "".
    return {name: _canonical_value(name, record.get(name, "")) for name in EXPORT_FIELDS}


def compute_record_hash(record: Mapping[str, object]) -> str:
    """SHA-256 hex over the canonical serialisation of ``HASHED_FIELDS`` of ``record``.

    JSON with a domain tag, field names, fixed order, no whitespace, UTF-8: unambiguous whatever
    the strings contain. Accepts database rows, export dicts and CSV strings alike.
    """
    if any(record.get(name) for name in _V2_FIELDS):
        domain, names = _HASH_DOMAIN, HASHED_FIELDS
    else:
        domain, names = _HASH_DOMAIN_V1, HASHED_FIELDS_V1
    pairs = [[name, _canonical_value(name, record[name])] for name in names]
    data = json.dumps([domain, pairs], ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(data.encode("utf-8")).hexdigest()


class ChainChecker:
    """Checks records fed in ``seq`` order; used on the database and on exports alike.

    ``anchored=False`` accepts a first record that does not start at seq 1 (an export of a time
    range): then only the links within the given records are checked.
    """

    def __init__(self, *, anchored: bool = True, head_seq: int | None = None) -> None:
        self._anchored = anchored
        self._head_seq = head_seq
        self._last_seq = 0
        self._last_hash = GENESIS_HASH
        self.records_checked = 0
        self.failure: ChainReport | None = None

    def _fail(self, seq: int | None, reason: str) -> ChainReport:
        self.failure = ChainReport(False, self.records_checked, seq, reason)
        return self.failure

    def feed(self, record: Mapping[str, object]) -> ChainReport | None:
        """Check the next record; returns the failure report, or None if the record is good."""
        if self.failure is not None:
            return self.failure
        try:
            seq = int(_canonical_value("seq", record["seq"]))
        except (KeyError, ValueError):
            return self._fail(self._last_seq + 1, "record has no valid seq")
        first = self.records_checked == 0
        if first and not self._anchored:
            self._last_seq = seq - 1
            self._last_hash = str(record.get("prev_hash", ""))
        expected = self._last_seq + 1
        if seq > expected:
            return self._fail(expected, f"record seq {expected} is missing (next is seq {seq})")
        if seq < expected:
            return self._fail(seq, "record seq is out of order or duplicated")
        if self._head_seq is not None and seq > self._head_seq:
            return self._fail(seq, "record is not covered by the chain head (inserted?)")
        try:
            recomputed = compute_record_hash(record)
            stored_hash = _canonical_value("record_hash", record["record_hash"])
        except (KeyError, ValueError):
            return self._fail(seq, "record fields are malformed")
        if recomputed != stored_hash:
            return self._fail(seq, "record hash does not match its contents")
        if record["prev_hash"] != self._last_hash:
            return self._fail(seq, "prev_hash does not match the previous record's hash")
        self._last_seq = seq
        self._last_hash = recomputed
        self.records_checked += 1
        return None

    def finish(self, head: tuple[int, str] | None = None) -> ChainReport:
        """The final report; ``head`` is the chain head's (last_seq, last_hash) when known."""
        if self.failure is not None:
            return self.failure
        if head is not None:
            head_seq, head_hash = head
            if head_seq > self._last_seq:
                missing = self._last_seq + 1
                return self._fail(
                    missing, f"record seq {missing} is missing (the chain head records {head_seq})"
                )
            if head_hash != self._last_hash:
                return self._fail(head_seq, "chain head hash does not match the newest record")
        return ChainReport(True, self.records_checked, None, "")


def read_export(inp: TextIO, fmt: ExportFormat) -> Iterator[dict[str, str | int | float]]:
    """The records of an export written by ``AuditLog.export``, in their canonical types."""
    if fmt == "jsonl":
        rows: Iterable[Mapping[str, object]] = (json.loads(line) for line in inp if line.strip())
    elif fmt == "csv":
        rows = csv.DictReader(inp)
    else:
        raise ValueError("export format must be 'jsonl' or 'csv'")
    for row in rows:
        yield canonical_record(row)


def verify_export(inp: TextIO, fmt: ExportFormat) -> ChainReport:
    """Check an export offline. A range that does not start at seq 1 is checked from its first
    record on (its first ``prev_hash`` is taken on trust); the chain head is not in an export.
    """
    checker = ChainChecker(anchored=False)
    try:
        for record in read_export(inp, fmt):
            if checker.feed(record) is not None:
                break
    except UnicodeDecodeError:
        raise  # not text: the caller says so, it is no sign of tampering
    except (KeyError, ValueError) as exc:
        return ChainReport(False, checker.records_checked, None, f"malformed export: {exc}")
    return checker.finish()
