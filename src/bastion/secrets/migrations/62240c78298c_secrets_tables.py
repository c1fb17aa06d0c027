"""secrets: secrets, their audit events, and the byte-usage row

Revision ID: 62240c78298c
Revises:
Create Date: 2026-11-23 21:08:30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "62240c78298c"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ("secrets",)
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "secrets_secret",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("ciphertext", sa.LargeBinary(), nullable=True),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("client_encrypted", sa.Boolean(), nullable=False),
        sa.Column("passphrase_hash", sa.String(length=255), nullable=True),
        sa.Column("views_remaining", sa.Integer(), nullable=False),
        sa.Column("max_views", sa.Integer(), nullable=False),
        sa.Column("created_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("expires_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("burned_at_ms", sa.BigInteger(), nullable=True),
        sa.Column("owner_id", sa.String(length=64), nullable=True),
        sa.Column("quota_key", sa.String(length=80), nullable=False),
        sa.Column("delete_token_hash", sa.LargeBinary(length=32), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_secrets_secret")),
    )
    with op.batch_alter_table("secrets_secret") as batch:
        batch.create_index(batch.f("ix_secrets_secret_expires_at_ms"), ["expires_at_ms"], unique=False)
        batch.create_index("ix_secrets_secret_quota", ["quota_key", "expires_at_ms"], unique=False)

    op.create_table(
        "secrets_event",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("secret_id", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("at_ms", sa.BigInteger(), nullable=False),
        sa.Column("client", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["secret_id"],
            ["secrets_secret.id"],
            name=op.f("fk_secrets_event_secret_id_secrets_secret"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_secrets_event")),
    )
    with op.batch_alter_table("secrets_event") as batch:
        batch.create_index(batch.f("ix_secrets_event_secret_id"), ["secret_id"], unique=False)

    usage = op.create_table(
        "secrets_usage",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_secrets_usage")),
    )
    # The one row that creates reserve their bytes on (see bastion.secrets.backends.sql).
    op.bulk_insert(usage, [{"id": 1, "bytes": 0}])


def downgrade() -> None:
    op.drop_table("secrets_usage")
    with op.batch_alter_table("secrets_event") as batch:
        batch.drop_index(batch.f("ix_secrets_event_secret_id"))
    op.drop_table("secrets_event")
    with op.batch_alter_table("secrets_secret") as batch:
        batch.drop_index("ix_secrets_secret_quota")
        batch.drop_index(batch.f("ix_secrets_secret_expires_at_ms"))
    op.drop_table("secrets_secret")
