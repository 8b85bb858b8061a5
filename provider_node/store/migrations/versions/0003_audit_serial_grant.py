"""Audit records name the client certificate's serial, the grant a comparison relied on, and the
record they follow up (a blinded comparison's opening record names the comparison it opens).

Records written before this revision keep "" in these columns and their "bidui-audit-v1" hashes;
records that carry any of them are hashed as "bidui-audit-v2" (``provider_node.audit.log``).

Revision ID: 0003_audit_serial_grant
Revises: 0002_grants_quotas_certificates
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_audit_serial_grant"
down_revision: str | None = "0002_grants_quotas_certificates"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("audit_record") as table:
        table.add_column(sa.Column("cert_serial", sa.String(40), nullable=False, server_default=""))
        table.add_column(sa.Column("grant_id", sa.String(36), nullable=False, server_default=""))
        table.add_column(sa.Column("related_id", sa.String(36), nullable=False, server_default=""))
    op.create_index("ix_audit_record_related_id", "audit_record", ["related_id"])
    # Finding blinded comparisons opened and never closed (reconciled at start and periodically).
    op.create_index("ix_audit_record_outcome_time", "audit_record", ["outcome", "occurred_at"])


def downgrade() -> None:
    # Article 35: audit records are kept at least two years, with everything they recorded.
    raise RuntimeError("the audit log cannot be downgraded: its records must be kept (article 35)")
