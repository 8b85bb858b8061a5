"""Discrepancy reports (article 26): a requester's doubt about a comparison's result, filed within
3 working days of the comparison, and the provider's answer within 5 working days of the report.
The audit tables are left as they are.

Revision ID: 0004_discrepancy_reports
Revises: 0003_audit_serial_grant
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_discrepancy_reports"
down_revision: str | None = "0003_audit_serial_grant"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _utc() -> sa.DateTime:
    # provider_node.store.engine.UTCDateTime stores through this type on both backends.
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "discrepancy_reports",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("comparison_id", sa.String(36), nullable=False),
        sa.Column("department", sa.String(64), nullable=False),
        sa.Column("resource_id", sa.String(64), nullable=False),
        sa.Column("compared_at", _utc(), nullable=False),
        sa.Column("positions", sa.JSON(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("filed_at", _utc(), nullable=False),
        sa.Column("report_deadline", sa.Date(), nullable=False),
        sa.Column("answer_deadline", sa.Date(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("answered_at", _utc(), nullable=True),
        sa.Column("answered_by", sa.Text(), nullable=True),
        sa.Column("answer", sa.Text(), nullable=True),
        sa.Column("correction_id", sa.String(36), nullable=True),
        sa.CheckConstraint(
            "status IN ('pending', 'confirmed', 'corrected', 'rejected')",
            name="ck_discrepancy_reports_status",
        ),
        sa.CheckConstraint(
            "(status = 'pending') = (answered_at IS NULL)",
            name="ck_discrepancy_reports_answered_at",
        ),
        sa.CheckConstraint(
            "status <> 'rejected' OR answer IS NOT NULL", name="ck_discrepancy_reports_rejection"
        ),
        sa.CheckConstraint(
            "(status = 'corrected') = (correction_id IS NOT NULL)",
            name="ck_discrepancy_reports_correction",
        ),
    )
    op.create_index(
        "ix_discrepancy_reports_comparison_id", "discrepancy_reports", ["comparison_id"]
    )
    op.create_index("ix_discrepancy_reports_department", "discrepancy_reports", ["department"])
    op.create_index(
        "ix_discrepancy_reports_status_deadline",
        "discrepancy_reports",
        ["status", "answer_deadline"],
    )


def downgrade() -> None:
    # The reports are working state beside the log; the audit records of their filing and answer
    # (article 35) stay.
    for index in (
        "ix_discrepancy_reports_status_deadline",
        "ix_discrepancy_reports_department",
        "ix_discrepancy_reports_comparison_id",
    ):
        op.drop_index(index, table_name="discrepancy_reports")
    op.drop_table("discrepancy_reports")
