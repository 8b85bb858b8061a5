"""The node's SQLAlchemy store: models, engines, sessions and schema migrations.

SQLite (a file next to the node's configuration) is the default; PostgreSQL through psycopg 3 is
the production store. Both behave the same for the audit log:

* the audit table is append-only and hash-chained (see ``provider_node.audit``);
* a one-row chain head holds the last sequence number and record hash, updated in the same
  transaction as each append, so removing the newest record is detected as well;
* writers serialise on the chain head: ``SELECT ... FOR UPDATE`` on PostgreSQL, ``BEGIN IMMEDIATE``
  on SQLite (emitted by the engine events installed in ``make_engine``);
* a primary key on ``seq`` and a unique ``prev_hash`` make a fork of the chain impossible even if
  the locking were bypassed.

Applications, grants, quota windows and issued certificates (migration 0002) are ordinary tables,
changed only through ``provider_node.grants``, ``provider_node.quotas`` and
``provider_node.certificates_store``; discrepancy reports (migration 0004) only through
``provider_node.discrepancies``.

The schema is created and upgraded only by the Alembic migrations shipped in
``provider_node/migrations`` (``migrate(engine)``); no ``alembic.ini`` is needed at run time.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Connection,
    Date,
    Double,
    Engine,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    text,
)
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker
from sqlalchemy.pool import StaticPool
from sqlalchemy.types import DateTime, TypeDecorator

__all__ = [
    "GENESIS_HASH",
    "HEAD_ROW_ID",
    "SQLITE_BEGIN_OPTION",
    "Application",
    "AuditChainHead",
    "AuditRecord",
    "Base",
    "Certificate",
    "DiscrepancyReport",
    "Grant",
    "QuotaUsage",
    "StoreTimeouts",
    "bound_statements",
    "make_engine",
    "migrate",
    "read_only_session",
    "session_factory",
    "snapshot_options",
]

#: The answers of applications and grants made before answers were recorded (migration 0005).
MATCH_ONLY = "'[\"match\"]'"
#: ``prev_hash`` of the first record, and the chain head's hash while the log is empty.
GENESIS_HASH = "0" * 64
#: The chain head table has exactly one row, with this id (created by migration 0001).
HEAD_ROW_ID = 1
#: Execution option read by the SQLite ``begin`` hook: "IMMEDIATE" (default) or "DEFERRED".
SQLITE_BEGIN_OPTION = "bidui_sqlite_begin"

# Every wait on the store is bounded, so a locked or hung store costs a requester seconds, not
# minutes: a writer waits at most this long for SQLite's lock (the audit append retries a few
# times on top), PostgreSQL statements and lock waits are cancelled by the server, and a
# connection that cannot be made or taken from the pool fails. A server frozen outright (SIGSTOP)
# cancels nothing: ``store_gate`` bounds the wait on the node's side.


@dataclass(frozen=True)
class StoreTimeouts:
    """The bounds on every wait for the store ([audit] in node.toml sets them).

    Lock waits are bounded everywhere; statements only on the request path
    (``bound_statements``), as ``bidui audit verify`` on a long log runs one long statement.
    """

    connect_s: float = 5.0
    pool_s: float = 5.0
    lock_s: float = 3.0
    statement_s: float = 5.0
    sqlite_busy_s: float = 2.0


_timeouts: weakref.WeakKeyDictionary[Engine, StoreTimeouts] = weakref.WeakKeyDictionary()
_MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on every backend.

    SQLite has no timezone type and hands back naive values; PostgreSQL stores ``timestamptz``.
    Values are converted to UTC on the way in and always come back aware, in UTC.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given for a UTC column")
        value = value.astimezone(UTC)
        # SQLite stores the literal text: keep it naive UTC so ordering and ranges compare right.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    """Declarative base of every table of the provider node."""


class AuditRecord(Base):
    """One audited comparison or governance action (articles 34, 35). Never updated or deleted."""

    __tablename__ = "audit_record"
    __table_args__ = (
        Index("ix_audit_record_outcome_time", "outcome", "occurred_at"),
        CheckConstraint("seq >= 1", name="ck_audit_record_seq_positive"),
        CheckConstraint("item_count >= 0", name="ck_audit_record_item_count"),
        CheckConstraint("match_count >= 0", name="ck_audit_record_match_count"),
        UniqueConstraint("comparison_id", name="uq_audit_record_comparison_id"),
        # Two records can never follow the same predecessor, so the chain cannot fork.
        UniqueConstraint("prev_hash", name="uq_audit_record_prev_hash"),
        UniqueConstraint("record_hash", name="uq_audit_record_record_hash"),
    )

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    comparison_id: Mapped[str] = mapped_column(String(36))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    action: Mapped[str] = mapped_column(String(64))
    requester: Mapped[str] = mapped_column(Text)
    cert_fingerprint: Mapped[str] = mapped_column(String(64))
    # Added by migration 0003; "" on records written before it.
    cert_serial: Mapped[str] = mapped_column(String(40), default="")
    grant_id: Mapped[str] = mapped_column(String(36), default="")
    related_id: Mapped[str] = mapped_column(String(36), default="", index=True)
    resource_id: Mapped[str] = mapped_column(Text)
    comparison_key: Mapped[str] = mapped_column(Text)
    mode: Mapped[str] = mapped_column(String(16))
    purpose: Mapped[str] = mapped_column(Text)
    item_count: Mapped[int] = mapped_column(BigInteger)
    match_count: Mapped[int] = mapped_column(BigInteger)
    outcome: Mapped[str] = mapped_column(String(16))
    status_code: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(Text)
    request_id: Mapped[str] = mapped_column(Text)
    duration_ms: Mapped[float] = mapped_column(Double)
    payload_sha256: Mapped[str] = mapped_column(String(64))
    prev_hash: Mapped[str] = mapped_column(String(64))
    record_hash: Mapped[str] = mapped_column(String(64))


class AuditChainHead(Base):
    """The single row naming the newest record; moved in the same transaction as each append."""

    __tablename__ = "audit_chain_head"
    __table_args__ = (
        CheckConstraint(f"id = {HEAD_ROW_ID}", name="ck_audit_chain_head_single_row"),
        CheckConstraint("last_seq >= 0", name="ck_audit_chain_head_last_seq"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last_seq: Mapped[int] = mapped_column(BigInteger)
    last_hash: Mapped[str] = mapped_column(String(64))


def make_engine(url: str, timeouts: StoreTimeouts = StoreTimeouts()) -> Engine:
    """An engine for the node's store.

    SQLite: WAL journal, ``synchronous=FULL`` (a committed audit record survives a crash or power
    loss), a busy timeout, foreign keys, and every transaction opened with ``BEGIN IMMEDIATE``
    unless the connection carries the execution option ``SQLITE_BEGIN_OPTION="DEFERRED"``.
    PostgreSQL: psycopg 3 (``postgresql://`` is taken to mean ``postgresql+psycopg://``), a connect
    timeout and pre-ping so a restarted server is noticed. Statement parameters are never put in
    error messages or logs (``hide_parameters``).
    """
    parsed = make_url(url)
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        engine = _make_sqlite_engine(url, timeouts)
        _timeouts[engine] = timeouts
        return engine
    connect_args: dict[str, Any] = {}
    if backend == "postgresql":
        # Options in the URL (a search_path, say) are kept: a keyword would replace them.
        given = parsed.query.get("options")
        given = " ".join(given) if isinstance(given, tuple) else given
        bounds = (
            f"-c lock_timeout={round(timeouts.lock_s * 1000)} "
            "-c idle_in_transaction_session_timeout=30000"
        )
        connect_args.update(
            connect_timeout=max(1, round(timeouts.connect_s)),
            options=f"{given} {bounds}" if given else bounds,
            # A peer that stops acknowledging (network gone) is noticed within seconds.
            keepalives=1,
            keepalives_idle=5,
            keepalives_interval=2,
            keepalives_count=3,
            tcp_user_timeout=10_000,
        )
    engine = create_engine(
        parsed,
        hide_parameters=True,
        pool_pre_ping=True,
        pool_timeout=timeouts.pool_s,
        connect_args=connect_args,
    )
    _timeouts[engine] = timeouts
    return engine


def _make_sqlite_engine(url: str, timeouts: StoreTimeouts) -> Engine:
    parsed = make_url(url)
    in_memory = parsed.database in (None, "", ":memory:")
    if not in_memory and parsed.database:
        _owner_only(Path(parsed.database))
    engine = create_engine(
        parsed,
        hide_parameters=True,
        connect_args={"check_same_thread": False, "timeout": timeouts.sqlite_busy_s},
        # One shared connection for an in-memory database, or each thread would see its own.
        **({"poolclass": StaticPool} if in_memory else {}),
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from the sqlite3 module so we can emit our own BEGIN.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            if not in_memory:
                cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.execute(f"PRAGMA busy_timeout={round(timeouts.sqlite_busy_s * 1000)}")
            cursor.execute("PRAGMA foreign_keys=ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        # IMMEDIATE takes the write lock up front: two writers never both read the same chain head
        # and then fail to upgrade their locks. Readers ask for DEFERRED to get a WAL snapshot
        # without blocking writers.
        mode = connection.get_execution_options().get(SQLITE_BEGIN_OPTION, "IMMEDIATE")
        if mode not in ("IMMEDIATE", "DEFERRED"):
            raise ValueError(f"{SQLITE_BEGIN_OPTION} must be IMMEDIATE or DEFERRED")
        connection.exec_driver_sql(f"BEGIN {mode}")

    return engine


def _owner_only(database: Path) -> None:
    """The audit database readable by the node's user only (mode 0600): it names departments and
    their purposes. SQLite gives its -wal and -shm files the database file's mode."""
    if not database.exists():
        database.parent.mkdir(parents=True, exist_ok=True)
        os.close(os.open(database, os.O_WRONLY | os.O_CREAT, 0o600))
    for path in (database, Path(f"{database}-wal"), Path(f"{database}-shm")):
        # Tightened by its owner only: an officer verifying a copy is not refused.
        if path.exists() and path.stat().st_mode & 0o077 and path.stat().st_uid == os.getuid():
            path.chmod(0o600)


def snapshot_options(engine: Engine | Connection) -> dict[str, Any]:
    """Execution options for a consistent read-only snapshot that does not block writers."""
    if engine.dialect.name == "sqlite":
        return {SQLITE_BEGIN_OPTION: "DEFERRED"}
    if engine.dialect.name == "postgresql":
        return {"isolation_level": "REPEATABLE READ"}
    return {}


def bound_statements(session: Session) -> None:
    """On PostgreSQL, cancel any statement of this transaction that runs longer than a request
    may wait (the audit append, grants and allowances on the request path)."""
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        bounds = _timeouts.get(connection.engine, StoreTimeouts())
        milliseconds = max(1, round(bounds.statement_s * 1000))
        connection.exec_driver_sql(f"SET LOCAL statement_timeout = {milliseconds}")


@contextmanager
def read_only_session(
    sessions: sessionmaker[Session], *, statement_timeout: float | None = None
) -> Iterator[Session]:
    """A session that reads one consistent snapshot without blocking writers; it must not write.

    On SQLite its transaction is ``BEGIN DEFERRED``: a reader in WAL mode neither takes the write
    lock nor waits for a writer. On PostgreSQL (REPEATABLE READ) ``statement_timeout`` seconds, if
    given, cancel any statement that runs longer, waiting for a lock included.
    """
    with sessions() as session:
        connection = session.connection(execution_options=snapshot_options(session.get_bind()))
        if statement_timeout is not None and connection.dialect.name == "postgresql":
            milliseconds = max(1, round(statement_timeout * 1000))
            connection.exec_driver_sql(f"SET LOCAL statement_timeout = {milliseconds}")
        yield session


_factories: weakref.WeakKeyDictionary[Engine, sessionmaker[Session]] = weakref.WeakKeyDictionary()
_factories_lock = threading.Lock()


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """The one sessionmaker of ``engine`` (created on first use). Sessions are per thread."""
    with _factories_lock:
        factory = _factories.get(engine)
        if factory is None:
            factory = sessionmaker(bind=engine, expire_on_commit=False)
            _factories[engine] = factory
        return factory


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision with the migrations shipped in this package.

    Runs inside one transaction. On PostgreSQL an advisory lock keeps two nodes started at the same
    time from migrating concurrently; on SQLite ``BEGIN IMMEDIATE`` does the same.
    """
    # Imported here: Alembic is only needed when the schema is touched.
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS_DIR))
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            connection.exec_driver_sql("SELECT pg_advisory_xact_lock(742133011)")
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


# ---- conditional sharing, quotas and certificates (migration 0002) ------------------------------
#
# Lists of comparison keys and modes are JSON arrays, sorted and without repeats, so equal grants
# store equal text. Calendar dates (validity, deadlines) are dates in China (``workdays``);
# instants are UTC. Rows are changed only by ``grants``, ``quotas`` and ``certificates_store``.


class Application(Base):
    """A department's application for a conditional resource (article 25), and its decision.

    ``status`` is one of ``grants.ApplicationStatus``; ``decided_at`` is set exactly when it is not
    pending.
    """

    __tablename__ = "applications"
    __table_args__ = (
        CheckConstraint(
            "status IN ('pending', 'approved', 'refused')", name="ck_applications_status"
        ),
        CheckConstraint("items_per_day >= 1", name="ck_applications_items_per_day"),
        CheckConstraint(
            "(status = 'pending') = (decided_at IS NULL)", name="ck_applications_decided_at"
        ),
        # Article 25: a refusal always gives its reason.
        CheckConstraint(
            "status <> 'refused' OR decision_reason IS NOT NULL", name="ck_applications_refusal"
        ),
        Index("ix_applications_status_deadline", "status", "decision_deadline"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    department: Mapped[str] = mapped_column(String(64), index=True)
    resource_id: Mapped[str] = mapped_column(String(64))
    comparison_keys: Mapped[list[str]] = mapped_column(JSON)
    modes: Mapped[list[str]] = mapped_column(JSON)
    duty: Mapped[str] = mapped_column(Text)
    items_per_day: Mapped[int] = mapped_column(BigInteger)
    valid_until: Mapped[date] = mapped_column(Date)
    submitted_at: Mapped[datetime] = mapped_column(UTCDateTime())
    decision_deadline: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(16))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    decision_reason: Mapped[str | None] = mapped_column(Text)
    decided_by: Mapped[str | None] = mapped_column(Text)
    #: Answers applied for (migration 0005; applications before it: match only).
    answers: Mapped[list[str]] = mapped_column(
        JSON, default=lambda: ["match"], server_default=text(MATCH_ONLY)
    )


class Grant(Base):
    """What an approval allows: at most what was applied for, valid from the decision day."""

    __tablename__ = "grants"
    __table_args__ = (
        CheckConstraint("items_per_day >= 1", name="ck_grants_items_per_day"),
        CheckConstraint("valid_from <= valid_until", name="ck_grants_validity"),
        CheckConstraint(
            "(revoked_at IS NULL) = (revocation_reason IS NULL)", name="ck_grants_revocation"
        ),
        UniqueConstraint("application_id", name="uq_grants_application_id"),
        Index("ix_grants_department_resource", "department", "resource_id"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    application_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("applications.id", name="fk_grants_application_id")
    )
    department: Mapped[str] = mapped_column(String(64))
    resource_id: Mapped[str] = mapped_column(String(64))
    comparison_keys: Mapped[list[str]] = mapped_column(JSON)
    modes: Mapped[list[str]] = mapped_column(JSON)
    items_per_day: Mapped[int] = mapped_column(BigInteger)
    valid_from: Mapped[date] = mapped_column(Date)
    valid_until: Mapped[date] = mapped_column(Date)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revocation_reason: Mapped[str | None] = mapped_column(Text)
    #: What comparisons under the grant may answer (migration 0005; grants before it: match only).
    answers: Mapped[list[str]] = mapped_column(
        JSON, default=lambda: ["match"], server_default=text(MATCH_ONLY)
    )


class QuotaUsage(Base):
    """Items used in one quota window: ``kind`` names the window ("grant_day", "department_minute"),
    ``scope`` what it limits (a grant id, a department), ``window_start`` when it opened (UTC)."""

    __tablename__ = "quota_usage"
    __table_args__ = (CheckConstraint("used >= 0", name="ck_quota_usage_used"),)

    kind: Mapped[str] = mapped_column(String(32), primary_key=True)
    scope: Mapped[str] = mapped_column(String(128), primary_key=True)
    window_start: Mapped[datetime] = mapped_column(UTCDateTime(), primary_key=True, index=True)
    used: Mapped[int] = mapped_column(BigInteger)


class Certificate(Base):
    """A department client certificate the node's operator issued, and its revocation if any."""

    __tablename__ = "certificates"
    __table_args__ = (
        CheckConstraint("not_before < not_after", name="ck_certificates_validity"),
        CheckConstraint(
            "(revoked_at IS NULL) = (revocation_reason IS NULL)", name="ck_certificates_revocation"
        ),
        UniqueConstraint("fingerprint_sha256", name="uq_certificates_fingerprint_sha256"),
    )

    #: Lowercase hex without leading zeros (``format(serial_number, "x")``).
    serial: Mapped[str] = mapped_column(String(40), primary_key=True)
    department: Mapped[str] = mapped_column(String(64), index=True)
    fingerprint_sha256: Mapped[str] = mapped_column(String(64))
    not_before: Mapped[datetime] = mapped_column(UTCDateTime())
    not_after: Mapped[datetime] = mapped_column(UTCDateTime())
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revocation_reason: Mapped[str | None] = mapped_column(Text)


# ---- discrepancy reports (migration 0004) -------------------------------------------------------


class DiscrepancyReport(Base):
    """A requester's report that it doubts part of a comparison's result (article 26), and the
    provider's answer. Changed only through ``provider_node.discrepancies``.

    ``positions`` are the doubted items' 0-based places in the comparison (a JSON array, sorted,
    without repeats); ``status`` is one of ``discrepancies.ReportStatus``; ``answered_at`` is set
    exactly when it is not pending; a rejection gives its reason, a correction names the audit
    record of the index refresh (``index_load``) that corrected the result.
    """

    __tablename__ = "discrepancy_reports"
    __table_args__ = (
        CheckConstraint(
            "status IN ('pending', 'confirmed', 'corrected', 'rejected')",
            name="ck_discrepancy_reports_status",
        ),
        CheckConstraint(
            "(status = 'pending') = (answered_at IS NULL)",
            name="ck_discrepancy_reports_answered_at",
        ),
        CheckConstraint(
            "status <> 'rejected' OR answer IS NOT NULL", name="ck_discrepancy_reports_rejection"
        ),
        CheckConstraint(
            "(status = 'corrected') = (correction_id IS NOT NULL)",
            name="ck_discrepancy_reports_correction",
        ),
        Index("ix_discrepancy_reports_status_deadline", "status", "answer_deadline"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    #: The ``comparison_id`` of the comparison's audit record.
    comparison_id: Mapped[str] = mapped_column(String(36), index=True)
    department: Mapped[str] = mapped_column(String(64), index=True)
    resource_id: Mapped[str] = mapped_column(String(64))
    compared_at: Mapped[datetime] = mapped_column(UTCDateTime())
    positions: Mapped[list[int]] = mapped_column(JSON)
    description: Mapped[str] = mapped_column(Text)
    filed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    #: The last day (in China) the report could be filed: 3 working days after the comparison.
    report_deadline: Mapped[date] = mapped_column(Date)
    #: The last day (in China) for the provider's answer: 5 working days after filing.
    answer_deadline: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(16))
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    answered_by: Mapped[str | None] = mapped_column(Text)
    answer: Mapped[str | None] = mapped_column(Text)
    #: The ``comparison_id`` of the ``index_load`` audit record that corrected the result.
    correction_id: Mapped[str | None] = mapped_column(String(36))
