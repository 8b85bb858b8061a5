"""Certificates name the key they certify, so a second certificate for the same key is seen at
signing and revoked with the first: a lost key is revoked, not one of its certificates.

Certificates recorded before this revision have no key recorded (NULL): a revocation of one of
them revokes that certificate alone, as before.

Revision ID: 0006_certificate_keys
Revises: 0005_answers
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_certificate_keys"
down_revision: str | None = "0005_answers"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("certificates", sa.Column("key_sha256", sa.String(64), nullable=True))
    op.create_index("ix_certificates_key_sha256", "certificates", ["key_sha256"])


def downgrade() -> None:
    op.drop_index("ix_certificates_key_sha256", table_name="certificates")
    op.drop_column("certificates", "key_sha256")
