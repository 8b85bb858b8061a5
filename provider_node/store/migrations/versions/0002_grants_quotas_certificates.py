"""Conditional sharing, durable quotas and issued certificates: applications, grants, quota_usage,
certificates. The audit tables are left as they are.

Revision ID: 0002_grants_quotas_certificates
Revises: 0001_audit_log
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_grants_quotas_certificates"
down_revision: str | None = "0001_audit_log"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _utc() -> sa.DateTime:
    # provider_node.store.engine.UTCDateTime stores through this type on both backends.
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "applications",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("department", sa.String(64), nullable=False),
        sa.Column("resource_id", sa.String(64), nullable=False),
        sa.Column("comparison_keys", sa.JSON(), nullable=False),
        sa.Column("modes", sa.JSON(), nullable=False),
        sa.Column("duty", sa.Text(), nullable=False),
        sa.Column("items_per_day", sa.BigInteger(), nullable=False),
        sa.Column("valid_until", sa.Date(), nullable=False),
        sa.Column("submitted_at", _utc(), nullable=False),
        sa.Column("decision_deadline", sa.Date(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("decided_at", _utc(), nullable=True),
        sa.Column("decision_reason", sa.Text(), nullable=True),
        sa.Column("decided_by", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "status IN ('pending', 'approved', 'refused')", name="ck_applications_status"
        ),
        sa.CheckConstraint("items_per_day >= 1", name="ck_applications_items_per_day"),
        sa.CheckConstraint(
            "(status = 'pending') = (decided_at IS NULL)", name="ck_applications_decided_at"
        ),
        sa.CheckConstraint(
            "status <> 'refused' OR decision_reason IS NOT NULL", name="ck_applications_refusal"
        ),
    )
    op.create_index("ix_applications_department", "applications", ["department"])
    op.create_index(
        "ix_applications_status_deadline", "applications", ["status", "decision_deadline"]
    )

    op.create_table(
        "grants",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("application_id", sa.String(36), nullable=False),
        sa.Column("department", sa.String(64), nullable=False),
        sa.Column("resource_id", sa.String(64), nullable=False),
        sa.Column("comparison_keys", sa.JSON(), nullable=False),
        sa.Column("modes", sa.JSON(), nullable=False),
        sa.Column("items_per_day", sa.BigInteger(), nullable=False),
        sa.Column("valid_from", sa.Date(), nullable=False),
        sa.Column("valid_until", sa.Date(), nullable=False),
        sa.Column("revoked_at", _utc(), nullable=True),
        sa.Column("revocation_reason", sa.Text(), nullable=True),
        sa.CheckConstraint("items_per_day >= 1", name="ck_grants_items_per_day"),
        sa.CheckConstraint("valid_from <= valid_until", name="ck_grants_validity"),
        sa.CheckConstraint(
            "(revoked_at IS NULL) = (revocation_reason IS NULL)", name="ck_grants_revocation"
        ),
        sa.ForeignKeyConstraint(
            ["application_id"], ["applications.id"], name="fk_grants_application_id"
        ),
        sa.UniqueConstraint("application_id", name="uq_grants_application_id"),
    )
    op.create_index("ix_grants_department_resource", "grants", ["department", "resource_id"])

    op.create_table(
        "quota_usage",
        sa.Column("kind", sa.String(32), primary_key=True),
        sa.Column("scope", sa.String(128), primary_key=True),
        sa.Column("window_start", _utc(), primary_key=True),
        sa.Column("used", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("used >= 0", name="ck_quota_usage_used"),
    )
    op.create_index("ix_quota_usage_window_start", "quota_usage", ["window_start"])

    op.create_table(
        "certificates",
        sa.Column("serial", sa.String(40), primary_key=True),
        sa.Column("department", sa.String(64), nullable=False),
        sa.Column("fingerprint_sha256", sa.String(64), nullable=False),
        sa.Column("not_before", _utc(), nullable=False),
        sa.Column("not_after", _utc(), nullable=False),
        sa.Column("issued_at", _utc(), nullable=False),
        sa.Column("revoked_at", _utc(), nullable=True),
        sa.Column("revocation_reason", sa.Text(), nullable=True),
        sa.CheckConstraint("not_before < not_after", name="ck_certificates_validity"),
        sa.CheckConstraint(
            "(revoked_at IS NULL) = (revocation_reason IS NULL)",
            name="ck_certificates_revocation",
        ),
        sa.UniqueConstraint("fingerprint_sha256", name="uq_certificates_fingerprint_sha256"),
    )
    op.create_index("ix_certificates_department", "certificates", ["department"])


def downgrade() -> None:
    # These tables are the node's working state, not its log: the audit records (article 35) are
    # left alone.
    for index, table in (
        ("ix_certificates_department", "certificates"),
        ("ix_quota_usage_window_start", "quota_usage"),
        ("ix_grants_department_resource", "grants"),
        ("ix_applications_status_deadline", "applications"),
        ("ix_applications_department", "applications"),
    ):
        op.drop_index(index, table_name=table)
    for table in ("certificates", "quota_usage", "grants", "applications"):
        op.drop_table(table)
