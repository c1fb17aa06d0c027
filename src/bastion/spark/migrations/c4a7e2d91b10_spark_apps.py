"""spark: hosted apps

Revision ID: c4a7e2d91b10
Revises: 9b3e5f1a7c42
Create Date: 2026-12-03 18:15:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "c4a7e2d91b10"
down_revision: str | Sequence[str] | None = "9b3e5f1a7c42"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "spark_apps",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("host", sa.String(length=253), nullable=False),
        sa.Column("dist", sa.Text(), nullable=False),
        sa.Column("public", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_spark_apps")),
        sa.UniqueConstraint("host", name=op.f("uq_spark_apps_host")),
    )


def downgrade() -> None:
    op.drop_table("spark_apps")
