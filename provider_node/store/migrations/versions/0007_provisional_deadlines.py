"""Deadlines counted past the working-day calendar's end are kept, marked provisional, instead
of refusing the application or the report: they are recomputed once the year is announced.

Revision ID: 0007_provisional_deadlines
Revises: 0006_certificate_keys
Create Date: 2026-12-08
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_provisional_deadlines"
down_revision: str | None = "0006_certificate_keys"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "applications",
        sa.Column("deadline_provisional", sa.Boolean, nullable=False, server_default=sa.false()),
    )
    op.add_column(
        "discrepancy_reports",
        sa.Column("deadlines_provisional", sa.Boolean, nullable=False, server_default=sa.false()),
    )


def downgrade() -> None:
    with op.batch_alter_table("discrepancy_reports") as batch:
        batch.drop_column("deadlines_provisional")
    with op.batch_alter_table("applications") as batch:
        batch.drop_column("deadline_provisional")
