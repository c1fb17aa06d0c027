"""notes: the notes table

Revision ID: 1a2b3c4d5e6f
Revises:
Create Date: 2026-12-03 15:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "1a2b3c4d5e6f"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ("notes",)
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "notes_note",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("owner", sa.String(length=80), nullable=False),
        sa.Column("text", sa.String(length=10_000), nullable=False),
        sa.Column("created_at_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notes_note")),
    )
    op.create_index(op.f("ix_notes_note_owner"), "notes_note", ["owner"])


def downgrade() -> None:
    op.drop_index(op.f("ix_notes_note_owner"), table_name="notes_note")
    op.drop_table("notes_note")
