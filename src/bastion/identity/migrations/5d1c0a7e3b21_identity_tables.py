"""identity: users, sessions and refresh tokens, API keys, OAuth accounts, invites

Revision ID: 5d1c0a7e3b21
Revises:
Create Date: 2026-11-24 09:00:00
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "5d1c0a7e3b21"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ("identity",)
depends_on: str | Sequence[str] | None = None


def _when(name: str, nullable: bool = False) -> sa.Column[Any]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "identity_users",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("email_verified", sa.Boolean(), nullable=False),
        sa.Column("login", sa.String(length=64), nullable=False),
        sa.Column("display_name", sa.String(length=128), nullable=False),
        sa.Column("avatar_url", sa.String(length=512), nullable=True),
        sa.Column("password_hash", sa.String(length=255), nullable=True),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("plan", sa.String(length=16), nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        _when("created_at"),
        _when("last_seen_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_identity_users")),
        sa.UniqueConstraint("email", name=op.f("uq_identity_users_email")),
        sa.UniqueConstraint("login", name=op.f("uq_identity_users_login")),
    )
    op.create_table(
        "identity_sessions",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("method", sa.String(length=32), nullable=False),
        sa.Column("client", sa.String(length=64), nullable=True),
        sa.Column("user_agent", sa.String(length=256), nullable=True),
        _when("created_at"),
        _when("last_used_at"),
        _when("expires_at"),
        _when("revoked_at", nullable=True),
        sa.Column("revoked_reason", sa.String(length=32), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["identity_users.id"],
            ondelete="CASCADE",
            name=op.f("fk_identity_sessions_user_id_identity_users"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_identity_sessions")),
    )
    op.create_index(op.f("ix_identity_sessions_user_id"), "identity_sessions", ["user_id"])
    op.create_table(
        "identity_refresh_tokens",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("session_id", sa.String(length=32), nullable=False),
        _when("issued_at"),
        _when("used_at", nullable=True),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["identity_sessions.id"],
            ondelete="CASCADE",
            name=op.f("fk_identity_refresh_tokens_session_id_identity_sessions"),
        ),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_identity_refresh_tokens")),
    )
    op.create_index(op.f("ix_identity_refresh_tokens_session_id"), "identity_refresh_tokens", ["session_id"])
    op.create_table(
        "identity_api_keys",
        sa.Column("id", sa.String(length=16), nullable=False),
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("secret_hash", sa.String(length=64), nullable=False),
        sa.Column("scopes", sa.JSON(), nullable=False),
        sa.Column("app", sa.String(length=64), nullable=True),
        _when("created_at"),
        _when("expires_at", nullable=True),
        _when("last_used_at", nullable=True),
        _when("revoked_at", nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["identity_users.id"],
            ondelete="CASCADE",
            name=op.f("fk_identity_api_keys_user_id_identity_users"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_identity_api_keys")),
    )
    op.create_index(op.f("ix_identity_api_keys_user_id"), "identity_api_keys", ["user_id"])
    op.create_table(
        "identity_oauth_accounts",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("subject", sa.String(length=255), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=True),
        sa.Column("access_token", sa.LargeBinary(), nullable=True),
        sa.Column("refresh_token", sa.LargeBinary(), nullable=True),
        _when("token_expires_at", nullable=True),
        sa.Column("scope", sa.String(length=512), nullable=True),
        _when("created_at"),
        _when("updated_at"),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["identity_users.id"],
            ondelete="CASCADE",
            name=op.f("fk_identity_oauth_accounts_user_id_identity_users"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_identity_oauth_accounts")),
        sa.UniqueConstraint("provider", "subject", name=op.f("uq_identity_oauth_accounts_provider")),
    )
    op.create_index(op.f("ix_identity_oauth_accounts_user_id"), "identity_oauth_accounts", ["user_id"])
    op.create_table(
        "identity_invites",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=True),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("created_by", sa.String(length=32), nullable=True),
        _when("created_at"),
        _when("expires_at"),
        _when("used_at", nullable=True),
        sa.Column("used_by", sa.String(length=32), nullable=True),
        sa.ForeignKeyConstraint(
            ["created_by"],
            ["identity_users.id"],
            ondelete="SET NULL",
            name=op.f("fk_identity_invites_created_by_identity_users"),
        ),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_identity_invites")),
    )


def downgrade() -> None:
    op.drop_table("identity_invites")
    op.drop_index(op.f("ix_identity_oauth_accounts_user_id"), table_name="identity_oauth_accounts")
    op.drop_table("identity_oauth_accounts")
    op.drop_index(op.f("ix_identity_api_keys_user_id"), table_name="identity_api_keys")
    op.drop_table("identity_api_keys")
    op.drop_index(op.f("ix_identity_refresh_tokens_session_id"), table_name="identity_refresh_tokens")
    op.drop_table("identity_refresh_tokens")
    op.drop_index(op.f("ix_identity_sessions_user_id"), table_name="identity_sessions")
    op.drop_table("identity_sessions")
    op.drop_table("identity_users")
