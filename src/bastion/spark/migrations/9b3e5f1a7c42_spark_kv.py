"""spark: the KV table

Revision ID: 9b3e5f1a7c42
Revises:
Create Date: 2026-11-23 22:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "9b3e5f1a7c42"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ("spark",)
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "spark_kv",
        sa.Column("app", sa.String(length=64), nullable=False),
        sa.Column("collection", sa.String(length=64), nullable=False),
        sa.Column("key", sa.String(length=512), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("app", "collection", "key", name=op.f("pk_spark_kv")),
    )


def downgrade() -> None:
    op.drop_table("spark_kv")
