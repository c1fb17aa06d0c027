"""SQL tables of the secrets module (the default backend). Times are epoch milliseconds: exact and
compared the same way on SQLite and PostgreSQL."""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from bastion.core.db import Base

# BIGINT on PostgreSQL; plain INTEGER on SQLite, where only INTEGER PRIMARY KEY autoincrements.
EventId = BigInteger().with_variant(Integer(), "sqlite")


class SecretRow(Base):
    """One secret. ``ciphertext`` is NULL once it is burned, fully viewed or expired; the row stays (without
    it) for the creator's audit trail until ``audit_retention_seconds`` after expiry."""

    __tablename__ = "secrets_secret"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    ciphertext: Mapped[bytes | None] = mapped_column(LargeBinary)
    size_bytes: Mapped[int] = mapped_column(Integer)
    client_encrypted: Mapped[bool] = mapped_column(Boolean)
    passphrase_hash: Mapped[str | None] = mapped_column(String(255))
    views_remaining: Mapped[int] = mapped_column(Integer)
    max_views: Mapped[int] = mapped_column(Integer)
    created_at_ms: Mapped[int] = mapped_column(BigInteger)
    expires_at_ms: Mapped[int] = mapped_column(BigInteger, index=True)
    burned_at_ms: Mapped[int | None] = mapped_column(BigInteger)
    owner_id: Mapped[str | None] = mapped_column(String(64))
    quota_key: Mapped[str] = mapped_column(String(80))
    delete_token_hash: Mapped[bytes] = mapped_column(LargeBinary(32))

    __table_args__ = (Index("ix_secrets_secret_quota", "quota_key", "expires_at_ms"),)


class SecretEventRow(Base):
    """The audit trail: created, viewed (with a coarse client), burned. "expired" is derived."""

    __tablename__ = "secrets_event"

    id: Mapped[int] = mapped_column(EventId, primary_key=True, autoincrement=True)
    secret_id: Mapped[str] = mapped_column(String(32), ForeignKey("secrets_secret.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    at_ms: Mapped[int] = mapped_column(BigInteger)
    client: Mapped[str | None] = mapped_column(String(64))


class SecretUsageRow(Base):
    """One row (id 1): the ciphertext bytes reserved by live secrets, for the total-bytes cap. Creates
    add to it atomically; the purge job takes off, in small batches, the bytes of ciphertexts it expired
    and those in ``secrets_released``."""

    __tablename__ = "secrets_usage"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    bytes: Mapped[int] = mapped_column(BigInteger)


class SecretReleasedRow(Base):
    """Bytes given back by a ciphertext dropped on its last view or a burn, until the purge job takes them
    off the usage row. An insert, not an update of that row: reveals never queue behind creates for it."""

    __tablename__ = "secrets_released"

    id: Mapped[int] = mapped_column(EventId, primary_key=True, autoincrement=True)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
