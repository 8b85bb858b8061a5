"""The tamper-evident audit log (articles 34, 35): one record per comparison or governance action.

Every record is hash-chained to the one before it, and a one-row chain head names the newest::

    seq 1                    seq 2                    seq N              chain head
    prev_hash = 0…0          prev_hash = h1           prev_hash = hN-1   last_seq  = N
    record_hash = h1  <───── record_hash = h2  … <─── record_hash = hN   last_hash = hN

    hK = SHA-256( canonical JSON [ "bidui-audit-v2", [field, value], … ] )  over every field of
         record K, including seq and prev_hash (see ``audit_records.HASHED_FIELDS``)

(records written before the certificate serial and the grant were recorded carry neither, and are
hashed as "bidui-audit-v1" over ``HASHED_FIELDS_V1``: which form applies follows from the record's
own content, so an edit that blanks the serial still breaks the hash)

so editing a record breaks its own hash, deleting or inserting one breaks ``seq`` or the next
``prev_hash``, and deleting the newest breaks the chain head. ``append`` commits the record and
the head in one transaction before it returns: the node answers only after that (fail closed) and
raises ``AuditUnavailableError`` (answered UNAVAILABLE) on any store failure. Records hold digests
and counts, never a queried value. They are kept at least ``MIN_RETENTION_DAYS`` (article 35).

The record format, its hash and the chain check are in ``provider_node.audit.records``; this
module writes, verifies, summarises and exports the log in the store.
"""

from __future__ import annotations

import csv
import itertools
import json
import random
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import fields as dataclass_fields
from datetime import UTC, datetime
from typing import Any, NamedTuple, TextIO, TypeVar, cast

from sqlalchemy import (
    Connection,
    Engine,
    Select,
    Table,
    bindparam,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from provider_node.audit.group_commit import GroupCommitter
from provider_node.audit.records import (
    EXPORT_FIELDS,
    MIN_RETENTION_DAYS,
    AuditEntry,
    ChainChecker,
    ChainReport,
    ExportFormat,
    canonical_record,
    check_retention_days,
    compute_record_hash,
)
from provider_node.core import errors
from provider_node.store.engine import bound_statements, read_only_session, snapshot_options
from provider_node.store.models import HEAD_ROW_ID, AuditChainHead, AuditRecord

_HEADS = cast(Table, AuditChainHead.__table__)
_LOCK_HEAD = (
    select(_HEADS.c.last_seq, _HEADS.c.last_hash)
    .where(_HEADS.c.id == HEAD_ROW_ID)
    .with_for_update()
)
_INSERT_RECORD = insert(cast(Table, AuditRecord.__table__))
_MOVE_HEAD = (
    update(_HEADS)
    .where(_HEADS.c.id == HEAD_ROW_ID)
    .values(last_seq=bindparam("new_seq"), last_hash=bindparam("new_hash"))
)

#: ``Session.info`` key: the chain head as this transaction has moved it, (seq, hash).
_HEAD = "bidui_audit_head"

__all__ = [
    "AuditLog",
    "AuditUnavailableError",
    "SummaryRow",
]

Clock = Callable[[], datetime]
_T = TypeVar("_T")

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
        group_commit_max_records: int = 64,
    ) -> None:
        self._sessions = sessions
        self._clock = clock
        self.retention_days = check_retention_days(retention_days)
        self._group = GroupCommitter(self._with_retries, max_group=group_commit_max_records)

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

    def append_grouped(self, act: Callable[[Session], AuditEntry]) -> AuditEntry:
        """``append_action`` for the request path: the record shares its transaction with those of
        other requests arriving at the same time (``GroupCommitter``), so many comparisons cost
        one commit. Returns once that transaction has committed; a refusal ``act`` raises undoes
        only its own change and reaches only this caller."""

        def work(session: Session) -> AuditEntry:
            entry = act(session)
            self._append_in(session, entry, entry.comparison_id or str(uuid.uuid4()))
            return entry

        return self._group.submit(work)

    def append_made(self, act: Callable[[Session], tuple[_T, AuditEntry]]) -> _T:
        """``append_action`` for an action that makes something (an application, a grant, a
        report): ``act`` returns it with its record, and it is returned once both are committed."""
        made: list[_T] = []

        def record(session: Session) -> AuditEntry:
            thing, entry = act(session)
            made[:] = [thing]  # a retry runs ``act`` afresh: keep the last attempt's
            return entry

        self.append_action(record)
        return made[0]

    def append_all(self, act: Callable[[Session], list[AuditEntry]]) -> list[AuditEntry]:
        """``append_action`` for an action that is several facts (a revocation of every
        certificate of one key): all its records are committed with the change, or none."""
        done: list[AuditEntry] = []

        def run(session: Session) -> None:
            entries = act(session)
            for entry in entries:
                self._append_in(session, entry, entry.comparison_id or str(uuid.uuid4()))
            done[:] = entries

        self._with_retries(run)
        return done

    def append_unless(self, act: Callable[[Session], AuditEntry | None]) -> AuditEntry | None:
        """``append_action`` where ``act`` may find nothing to record (returns None): e.g. a
        comparison another node process has already closed. Each retry runs ``act`` afresh."""

        def some(session: Session) -> list[AuditEntry]:
            entry = act(session)
            return [] if entry is None else [entry]

        done = self.append_all(some)
        return done[0] if done else None

    def _with_retries(self, work: Callable[[Session], None]) -> None:
        for attempt in range(1, _APPEND_ATTEMPTS + 1):
            try:
                with self._sessions.begin() as session:
                    bound_statements(session)
                    work(session)
                    moved = session.info.pop(_HEAD, None)
                    if moved is not None:
                        session.execute(_MOVE_HEAD, {"new_seq": moved[0], "new_hash": moved[1]})
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
        # Prebuilt Core statements with bound parameters, not ORM objects or ``.values(...)``:
        # this runs once per comparison before its answer, and building the statement anew
        # (coercing each of the ~25 values) was most of its CPU time. The head is locked and read
        # once per transaction and moved once, before the commit (``_with_retries``): a group of
        # records costs one insert each and two statements for all.
        head = session.info.get(_HEAD)
        if head is None:
            row = session.execute(_LOCK_HEAD).one_or_none()
            if row is None:
                raise AuditUnavailableError("the audit chain head row is missing")
            head = (row.last_seq, row.last_hash)
        occurred_at = self._clock()
        if occurred_at.tzinfo is None:
            raise ValueError("the audit clock must return timezone-aware datetimes")
        fields: dict[str, Any] = {f.name: getattr(entry, f.name) for f in dataclass_fields(entry)}
        fields.update(
            seq=head[0] + 1,
            comparison_id=comparison_id,
            occurred_at=occurred_at.astimezone(UTC),
            prev_hash=head[1],
        )
        record_hash = compute_record_hash(fields)
        session.execute(_INSERT_RECORD, {**fields, "record_hash": record_hash})
        session.info[_HEAD] = (fields["seq"], record_hash)

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
                    record = canonical_record(row)
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
