"""secrets: the released-bytes ledger, and the usage row trued up once

Revision ID: a7c4e2f19d03
Revises: 62240c78298c
Create Date: 2026-12-03 18:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "a7c4e2f19d03"
down_revision: str | Sequence[str] | None = "62240c78298c"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "secrets_released",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_secrets_released")),
    )
    # From here on the usage row is kept exact as ciphertexts go; start it from the true sum (the last
    # whole-table sum the purge job will ever need).
    op.execute(
        "UPDATE secrets_usage SET bytes = "
        "(SELECT COALESCE(SUM(size_bytes), 0) FROM secrets_secret WHERE ciphertext IS NOT NULL) WHERE id = 1"
    )


def downgrade() -> None:
    op.drop_table("secrets_released")
