"""The node's tables: SQLAlchemy models of everything the provider node stores.

* the audit log (migrations 0001, 0003): ``AuditRecord``, append-only and hash-chained (see
  ``provider_node.audit.log``), and ``AuditChainHead``, the one row naming the newest record, moved
  in
  the same transaction as each append so removing the newest record is detected as well; a primary
  key on ``seq`` and a unique ``prev_hash`` make a fork of the chain impossible even if the locking
  in ``provider_node.audit.log`` were bypassed;
* applications, grants, quota windows and issued certificates (migration 0002), changed only
  through ``provider_node.governance.grants``, ``provider_node.access.quotas`` and
  ``provider_node.identity.certificates``;
* discrepancy reports (migration 0004), changed only through
  ``provider_node.governance.discrepancies``.

The schema is created and upgraded only by the Alembic migrations in
``provider_node/store/migrations``
(``provider_node.store.engine.migrate``), whose environment compares against ``Base.metadata``.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    Double,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy import false as sa_false
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import DateTime, TypeDecorator

__all__ = [
    "GENESIS_HASH",
    "HEAD_ROW_ID",
    "Application",
    "AuditChainHead",
    "AuditRecord",
    "Base",
    "Certificate",
    "DiscrepancyReport",
    "Grant",
    "QuotaUsage",
    "UTCDateTime",
]

#: The answers of applications and grants made before answers were recorded (migration 0005).
MATCH_ONLY = "'[\"match\"]'"
#: ``prev_hash`` of the first record, and the chain head's hash while the log is empty.
GENESIS_HASH = "0" * 64
#: The chain head table has exactly one row, with this id (created by migration 0001).
HEAD_ROW_ID = 1


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
    #: The decision deadline was counted over a year the calendar did not know yet (migration
    #: 0007): recomputed once it does (``workdays.working_deadline``).
    deadline_provisional: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=sa_false()
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
    #: SHA-256 of the certified public key (SubjectPublicKeyInfo, DER); NULL before migration 0006.
    key_sha256: Mapped[str | None] = mapped_column(String(64), index=True)
    not_before: Mapped[datetime] = mapped_column(UTCDateTime())
    not_after: Mapped[datetime] = mapped_column(UTCDateTime())
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revocation_reason: Mapped[str | None] = mapped_column(Text)


# ---- discrepancy reports (migration 0004) -------------------------------------------------------


class DiscrepancyReport(Base):
    """A requester's report that it doubts part of a comparison's result (article 26), and the
    provider's answer. Changed only through ``provider_node.governance.discrepancies``.

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
    #: Either deadline was counted over a year the calendar did not know yet (migration 0007).
    deadlines_provisional: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=sa_false()
    )
    status: Mapped[str] = mapped_column(String(16))
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    answered_by: Mapped[str | None] = mapped_column(Text)
    answer: Mapped[str | None] = mapped_column(Text)
    #: The ``comparison_id`` of the ``index_load`` audit record that corrected the result.
    correction_id: Mapped[str | None] = mapped_column(String(36))
