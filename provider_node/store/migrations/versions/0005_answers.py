"""Applications and grants name the answers comparisons under them may give: match bits,
verification (核验) outcomes, a count (each its own permission). Applications and grants made
before this revision allowed match bits only, and keep exactly that.

Revision ID: 0005_answers
Revises: 0004_discrepancy_reports
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_answers"
down_revision: str | None = "0004_discrepancy_reports"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Grants and applications made before this revision allowed match bits only.
_MATCH_ONLY = "'[\"match\"]'"


# Not batch mode: SQLite adds (and, from 3.35, drops) a column in place, where a batch copy of
# applications would break the foreign key grants hold on it.


def upgrade() -> None:
    for table_name in ("applications", "grants"):
        op.add_column(
            table_name,
            sa.Column("answers", sa.JSON(), nullable=False, server_default=sa.text(_MATCH_ONLY)),
        )


def downgrade() -> None:
    for table_name in ("grants", "applications"):
        op.drop_column(table_name, "answers")
