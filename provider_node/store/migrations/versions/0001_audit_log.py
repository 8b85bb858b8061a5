"""Audit log: hash-chained audit records and the one-row chain head.

Revision ID: 0001_audit_log
Revises:
Create Date: 2024-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001_audit_log"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_GENESIS_HASH = (
    "0" * 64
)  # the same as provider_node.store.engine.GENESIS_HASH, frozen at this revision


def upgrade() -> None:
    op.create_table(
        "audit_record",
        sa.Column("seq", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("comparison_id", sa.String(36), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("requester", sa.Text(), nullable=False),
        sa.Column("cert_fingerprint", sa.String(64), nullable=False),
        sa.Column("resource_id", sa.Text(), nullable=False),
        sa.Column("comparison_key", sa.Text(), nullable=False),
        sa.Column("mode", sa.String(16), nullable=False),
        sa.Column("purpose", sa.Text(), nullable=False),
        sa.Column("item_count", sa.BigInteger(), nullable=False),
        sa.Column("match_count", sa.BigInteger(), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("status_code", sa.String(32), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("request_id", sa.Text(), nullable=False),
        sa.Column("duration_ms", sa.Double(), nullable=False),
        sa.Column("payload_sha256", sa.String(64), nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("record_hash", sa.String(64), nullable=False),
        sa.CheckConstraint("seq >= 1", name="ck_audit_record_seq_positive"),
        sa.CheckConstraint("item_count >= 0", name="ck_audit_record_item_count"),
        sa.CheckConstraint("match_count >= 0", name="ck_audit_record_match_count"),
        sa.UniqueConstraint("comparison_id", name="uq_audit_record_comparison_id"),
        sa.UniqueConstraint("prev_hash", name="uq_audit_record_prev_hash"),
        sa.UniqueConstraint("record_hash", name="uq_audit_record_record_hash"),
    )
    op.create_index("ix_audit_record_occurred_at", "audit_record", ["occurred_at"])
    head = op.create_table(
        "audit_chain_head",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.Column("last_hash", sa.String(64), nullable=False),
        sa.CheckConstraint("id = 1", name="ck_audit_chain_head_single_row"),
        sa.CheckConstraint("last_seq >= 0", name="ck_audit_chain_head_last_seq"),
    )
    op.bulk_insert(head, [{"id": 1, "last_seq": 0, "last_hash": _GENESIS_HASH}])


def downgrade() -> None:
    # Article 35: audit records are kept at least two years. Dropping the table would destroy them.
    raise RuntimeError("the audit log cannot be downgraded: its records must be kept (article 35)")
