"""The tamper-evident audit log (articles 34, 35): one record per comparison or governance action.

Every record is hash-chained to the one before it, and a one-row chain head names the newest::

    seq 1                    seq 2                    seq N              chain head
    prev_hash = 0…0          prev_hash = h1           prev_hash = hN-1   last_seq  = N
    record_hash = h1  <───── record_hash = h2  … <─── record_hash = hN   last_hash = hN

    hK = SHA-256( canonical JSON [ "bidui-audit-v2", [field, value], … ] )  over every field of
         record K, including seq and prev_hash (see ``HASHED_FIELDS``)

(records written before the certificate serial and the grant were recorded carry neither, and are
hashed as "bidui-audit-v1" over ``HASHED_FIELDS_V1``: which form applies follows from the record's
own content, so an edit that blanks the serial still breaks the hash)

so editing a record breaks its own hash, deleting or inserting one breaks ``seq`` or the next
``prev_hash``, and deleting the newest breaks the chain head. ``append`` commits the record and
the head in one transaction before it returns: the node answers only after that (fail closed) and
raises ``AuditUnavailableError`` (answered UNAVAILABLE) on any store failure. Records hold digests
and counts, never a queried value. They are kept at least ``MIN_RETENTION_DAYS`` (article 35).
"""

from __future__ import annotations

import csv
import hashlib
import itertools
import json
import math
import random
import re
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Literal, NamedTuple, TextIO, TypeVar

from sqlalchemy import Connection, Engine, Select, func, select
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from provider_node import errors
from provider_node.store import (
    GENESIS_HASH,
    HEAD_ROW_ID,
    AuditChainHead,
    AuditRecord,
    bound_statements,
    read_only_session,
    snapshot_options,
)

__all__ = [
    "EXPORT_FIELDS",
    "HASHED_FIELDS",
    "MIN_RETENTION_DAYS",
    "AuditEntry",
    "AuditLog",
    "AuditUnavailableError",
    "ChainChecker",
    "ChainReport",
    "check_retention_days",
    "compute_record_hash",
    "read_export",
    "verify_export",
]

#: Article 35: logs are kept at least two years.
MIN_RETENTION_DAYS = 730

ExportFormat = Literal["jsonl", "csv"]
Clock = Callable[[], datetime]
_T = TypeVar("_T")

#: ``opened``: a blinded comparison's first step, recorded before its evaluations leave the node;
#: the comparison's own record (answered, refused, failed or abandoned) follows.
OUTCOMES = frozenset({"answered", "refused", "failed", "abandoned", "opened"})
MODES = frozenset({"hashed", "blinded", ""})

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
_BUSY_MARKERS = ("database is locked", "database is busy", "database table is locked")
_APPEND_ATTEMPTS = 5


class AuditUnavailableError(errors.AuditUnavailableError):
    """The audit store could not be written or read.

    ``str(error)`` is safe to send to a requester; ``detail`` is for the operator (driver message,
    never statement parameters).
    """

    def __init__(self, detail: str) -> None:
        super().__init__("the audit log is unavailable, so the node cannot answer now")
        self.detail = detail


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

    ``action`` is "comparison" or a governance action ("hash_key_fetch", "index_load",
    "key_rotation", …); ``requester`` is the department id from the client certificate ("" if
    unauthenticated); ``status_code`` is the gRPC status name ("OK", "PERMISSION_DENIED").
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


class SummaryRow(NamedTuple):
    """One group of audit records counted by ``AuditLog.summarise``."""

    action: str
    requester: str
    resource_id: str
    #: The grant a comparison relied on or a governance action concerned; "" for none.
    grant_id: str
    mode: str
    outcome: str
    status_code: str
    records: int
    items: int
    matches: int


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


def _canonical_record(record: Mapping[str, object]) -> dict[str, str | int | float]:
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


class AuditLog:
    """Appends, verifies and exports the audit chain; one instance is shared by all threads.

    Each call opens its own session from ``sessions`` (a session is never shared across threads).
    ``clock`` returns an aware datetime; it is read while the chain head is locked, so record
    times follow ``seq``.
    """

    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        clock: Clock = lambda: datetime.now(UTC),
        retention_days: int = MIN_RETENTION_DAYS,
    ) -> None:
        self._sessions = sessions
        self._clock = clock
        self.retention_days = check_retention_days(retention_days)

    @property
    def sessions(self) -> sessionmaker[Session]:
        """The store's sessions, for governance actions recorded with ``append(also=...)``."""
        return self._sessions

    @property
    def _engine(self) -> Engine:
        bind = self._sessions.kw.get("bind")
        if not isinstance(bind, Engine):
            raise TypeError("AuditLog needs a sessionmaker bound to an Engine")
        return bind

    def append(self, entry: AuditEntry) -> str:
        """Commit ``entry`` as the next record of the chain; returns its comparison id.

        Returns only once the record and the chain head are committed. Raises
        ``AuditUnavailableError`` on any store failure: the caller must then answer UNAVAILABLE
        and return no result.
        """
        comparison_id = entry.comparison_id or str(uuid.uuid4())
        self._with_retries(lambda session: self._append_in(session, entry, comparison_id))
        return comparison_id

    def append_action(self, act: Callable[[Session], AuditEntry]) -> AuditEntry:
        """Run a governance action and commit its record in one transaction; returns the record.

        ``act`` changes the store through the session it is given (a revocation, a decision) and
        returns the entry describing what it did: both are committed together or not at all.
        Errors ``act`` raises that are not the store's own propagate unchanged.
        """
        entry = self.append_unless(act)
        assert entry is not None
        return entry

    def append_unless(self, act: Callable[[Session], AuditEntry | None]) -> AuditEntry | None:
        """``append_action`` where ``act`` may find nothing to record (returns None): e.g. a
        comparison another node process has already closed. Each retry runs ``act`` afresh."""
        done: list[AuditEntry | None] = [None]

        def run(session: Session) -> None:
            entry = act(session)
            if entry is not None:
                self._append_in(session, entry, entry.comparison_id or str(uuid.uuid4()))
            done[0] = entry

        self._with_retries(run)
        return done[0]

    def _with_retries(self, work: Callable[[Session], None]) -> None:
        for attempt in range(1, _APPEND_ATTEMPTS + 1):
            try:
                with self._sessions.begin() as session:
                    bound_statements(session)
                    work(session)
                return
            except OperationalError as exc:
                if attempt == _APPEND_ATTEMPTS or not _is_busy(exc):
                    raise AuditUnavailableError(_describe(exc)) from exc
            except IntegrityError as exc:
                # Two writers can only collide if the head lock was bypassed; the constraints
                # refused the fork, so retrying on the fresh head is safe.
                if attempt == _APPEND_ATTEMPTS:
                    raise AuditUnavailableError(_describe(exc)) from exc
            except SQLAlchemyError as exc:
                raise AuditUnavailableError(_describe(exc)) from exc
            time.sleep(random.uniform(0.005, 0.02) * attempt)  # jitter, not crypto

    def _append_in(self, session: Session, entry: AuditEntry, comparison_id: str) -> None:
        head = session.scalars(
            select(AuditChainHead).where(AuditChainHead.id == HEAD_ROW_ID).with_for_update()
        ).one_or_none()
        if head is None:
            raise AuditUnavailableError("the audit chain head row is missing")
        occurred_at = self._clock()
        if occurred_at.tzinfo is None:
            raise ValueError("the audit clock must return timezone-aware datetimes")
        fields: dict[str, Any] = asdict(entry)
        fields.update(
            seq=head.last_seq + 1,
            comparison_id=comparison_id,
            occurred_at=occurred_at.astimezone(UTC),
            prev_hash=head.last_hash,
        )
        record_hash = compute_record_hash(fields)
        session.add(AuditRecord(**fields, record_hash=record_hash))
        head.last_seq = fields["seq"]
        head.last_hash = record_hash

    def verify(self) -> ChainReport:
        """Check the whole chain in ``seq`` order, streaming, in one consistent snapshot."""
        try:
            with self._sessions() as session:
                connection = session.connection(execution_options=snapshot_options(self._engine))
                head = connection.execute(
                    select(AuditChainHead.last_seq, AuditChainHead.last_hash).where(
                        AuditChainHead.id == HEAD_ROW_ID
                    )
                ).one_or_none()
                if head is None:
                    return ChainReport(False, 0, None, "the chain head row is missing")
                checker = ChainChecker(head_seq=head.last_seq)
                records = select(AuditRecord.__table__).order_by(AuditRecord.seq)
                try:
                    for row in _stream(connection, records):
                        if checker.feed(row) is not None:
                            break
                except (ValueError, TypeError, ArithmeticError):
                    # A value the column type cannot even read: edited outside bidui.
                    bad = checker.records_checked + 1
                    return ChainReport(
                        False,
                        checker.records_checked,
                        bad,
                        f"record seq {bad} (or the one after it) holds values that cannot be "
                        "read back: it was edited outside bidui",
                    )
                return checker.finish((head.last_seq, head.last_hash))
        except SQLAlchemyError as exc:
            raise AuditUnavailableError(_describe(exc)) from exc

    def summarise(self, start: datetime, end: datetime) -> list[SummaryRow]:
        """Records with ``start <= occurred_at < end`` grouped by what a report counts
        (action, requester, resource, grant, mode, outcome, status), in one consistent snapshot."""
        for bound in (start, end):
            if bound.tzinfo is None:
                raise ValueError("summary time bounds must be timezone-aware")
        columns = (
            AuditRecord.action,
            AuditRecord.requester,
            AuditRecord.resource_id,
            AuditRecord.grant_id,
            AuditRecord.mode,
            AuditRecord.outcome,
            AuditRecord.status_code,
        )
        stmt = (
            select(
                *columns,
                func.count(),
                func.coalesce(func.sum(AuditRecord.item_count), 0),
                func.coalesce(func.sum(AuditRecord.match_count), 0),
            )
            .where(AuditRecord.occurred_at >= start, AuditRecord.occurred_at < end)
            .group_by(*columns)
            .order_by(*columns)
        )
        return self.read(lambda session: [SummaryRow._make(row) for row in session.execute(stmt)])

    def read(self, query: Callable[[Session], _T]) -> _T:
        """What ``query`` returns, run in one consistent read-only snapshot of the store: the log,
        or the tables beside it (the applications a quarterly report counts). ``query`` must not
        write; ``AuditUnavailableError`` when the store cannot be read."""
        try:
            with read_only_session(self._sessions) as session:
                return query(session)
        except SQLAlchemyError as exc:
            raise AuditUnavailableError(_describe(exc)) from exc

    def export(
        self,
        out: TextIO,
        fmt: ExportFormat = "jsonl",
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> int:
        """Write the records with ``start <= occurred_at < end`` in ``seq`` order; return the count.

        Each line (JSON Lines) or row (CSV, with a header) has ``EXPORT_FIELDS``, so the export can
        be checked offline with ``verify_export``.
        """
        if fmt not in ("jsonl", "csv"):
            raise ValueError("export format must be 'jsonl' or 'csv'")
        for bound in (start, end):
            if bound is not None and bound.tzinfo is None:
                raise ValueError("export time bounds must be timezone-aware")
        stmt = select(AuditRecord.__table__).order_by(AuditRecord.seq)
        if start is not None:
            stmt = stmt.where(AuditRecord.occurred_at >= start)
        if end is not None:
            stmt = stmt.where(AuditRecord.occurred_at < end)
        writer = csv.writer(out, lineterminator="\n") if fmt == "csv" else None
        count = 0
        try:
            with self._sessions() as session:
                connection = session.connection(execution_options=snapshot_options(self._engine))
                rows = _stream(connection, stmt)
                first = next(rows, None)  # nothing is written if the store cannot be read
                if writer is not None:
                    writer.writerow(EXPORT_FIELDS)
                for row in itertools.chain([first] if first is not None else [], rows):
                    record = _canonical_record(row)
                    if writer is not None:
                        writer.writerow(_csv_cell(record[name]) for name in EXPORT_FIELDS)
                    else:
                        out.write(json.dumps(record, ensure_ascii=False) + "\n")
                    count += 1
        except SQLAlchemyError as exc:
            raise AuditUnavailableError(_describe(exc)) from exc
        return count


def _stream(connection: Connection, stmt: Select[Any]) -> Iterator[Mapping[str, Any]]:
    """Rows as mappings, fetched in batches (a server-side cursor on PostgreSQL)."""
    for row in connection.execute(stmt, execution_options={"yield_per": 1000}):
        yield dict(row._mapping)


def _csv_cell(value: str | int | float) -> str:
    return repr(value) if isinstance(value, float) else str(value)


def _is_busy(exc: DBAPIError) -> bool:
    message = str(exc.orig).lower()
    return any(marker in message for marker in _BUSY_MARKERS)


def _describe(exc: SQLAlchemyError) -> str:
    """The driver's own first line (never statement parameters: they live in SQLAlchemy's text)."""
    origin: BaseException = exc.orig if isinstance(exc, DBAPIError) and exc.orig else exc
    first_line = (str(origin).strip().splitlines() or [""])[0]
    return f"{type(origin).__name__}: {first_line}"[:300]


def read_export(inp: TextIO, fmt: ExportFormat) -> Iterator[dict[str, str | int | float]]:
    """The records of an export written by ``AuditLog.export``, in their canonical types."""
    if fmt == "jsonl":
        rows: Iterable[Mapping[str, object]] = (json.loads(line) for line in inp if line.strip())
    elif fmt == "csv":
        rows = csv.DictReader(inp)
    else:
        raise ValueError("export format must be 'jsonl' or 'csv'")
    for row in rows:
        yield _canonical_record(row)


def verify_export(inp: TextIO, fmt: ExportFormat) -> ChainReport:
    """Check an export offline. A range that does not start at seq 1 is checked from its first
    record on (its first ``prev_hash`` is taken on trust); the chain head is not in an export.
    """
    checker = ChainChecker(anchored=False)
    try:
        for record in read_export(inp, fmt):
            if checker.feed(record) is not None:
                break
    except (KeyError, ValueError) as exc:
        return ChainReport(False, checker.records_checked, None, f"malformed export: {exc}")
    return checker.finish()
