"""SQL tables of the visitors module. Times are epoch milliseconds (exact, compared alike on SQLite and
PostgreSQL). A visitor who is erased keeps its row (visits and the audit point at it) with no personal data."""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from bastion.core.db import Base

RowId = BigInteger().with_variant(Integer(), "sqlite")


class SiteRow(Base):
    __tablename__ = "visitors_site"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    timezone: Mapped[str] = mapped_column(String(64))
    quiet_start: Mapped[str | None] = mapped_column(String(5))
    """"HH:MM" site time; messages due inside [quiet_start, quiet_end) wait for quiet_end."""
    quiet_end: Mapped[str | None] = mapped_column(String(5))
    owner_id: Mapped[str] = mapped_column(String(64))
    """The account whose WhatsApp templates the site's messages use (its creator)."""
    created_at_ms: Mapped[int] = mapped_column(BigInteger)


class MemberRow(Base):
    __tablename__ = "visitors_member"

    id: Mapped[int] = mapped_column(RowId, primary_key=True, autoincrement=True)
    site_id: Mapped[str] = mapped_column(ForeignKey("visitors_site.id", ondelete="CASCADE"))
    account_id: Mapped[str] = mapped_column(String(64), index=True)
    role: Mapped[str] = mapped_column(String(8))
    name: Mapped[str | None] = mapped_column(String(200))
    phone: Mapped[str | None] = mapped_column(String(16))
    """Where a host is told of arrivals and sent the digest (none: not told)."""

    __table_args__ = (UniqueConstraint("site_id", "account_id", "role", name="uq_visitors_member_role"),)


class VisitorRow(Base):
    __tablename__ = "visitors_visitor"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    site_id: Mapped[str] = mapped_column(ForeignKey("visitors_site.id", ondelete="CASCADE"), index=True)
    name: Mapped[str | None] = mapped_column(String(200))
    phone: Mapped[str | None] = mapped_column(String(16))
    consent_at_ms: Mapped[int | None] = mapped_column(BigInteger)
    consent_method: Mapped[str | None] = mapped_column(String(200))
    blocked: Mapped[bool] = mapped_column(Boolean, default=False)
    photo_key: Mapped[str | None] = mapped_column(String(200))
    id_document_key: Mapped[str | None] = mapped_column(String(200))
    created_by: Mapped[str] = mapped_column(String(64))
    created_at_ms: Mapped[int] = mapped_column(BigInteger)
    erased_at_ms: Mapped[int | None] = mapped_column(BigInteger)


class VisitRow(Base):
    __tablename__ = "visitors_visit"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    site_id: Mapped[str] = mapped_column(ForeignKey("visitors_site.id", ondelete="CASCADE"))
    visitor_id: Mapped[str] = mapped_column(ForeignKey("visitors_visitor.id"), index=True)
    host_id: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    starts_at_ms: Mapped[int] = mapped_column(BigInteger)
    ends_at_ms: Mapped[int] = mapped_column(BigInteger)
    purpose: Mapped[str | None] = mapped_column(String(500))
    pass_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    """SHA-256 of the pass code (the code is 128 random bits: no slow hash needed); cleared once used up."""
    created_by: Mapped[str] = mapped_column(String(64))
    created_at_ms: Mapped[int] = mapped_column(BigInteger)
    updated_at_ms: Mapped[int] = mapped_column(BigInteger)
    checked_in_at_ms: Mapped[int | None] = mapped_column(BigInteger)
    checked_out_at_ms: Mapped[int | None] = mapped_column(BigInteger)
    reminded_at_ms: Mapped[int | None] = mapped_column(BigInteger)

    __table_args__ = (
        Index("ix_visitors_visit_site_start", "site_id", "starts_at_ms"),
        Index("ix_visitors_visit_host_start", "host_id", "starts_at_ms"),
        Index("ix_visitors_visit_status_end", "status", "ends_at_ms"),
    )


class DigestRow(Base):
    """One row per host, site and local day: the digest is sent once (the unique key decides between two
    instances running the job at once)."""

    __tablename__ = "visitors_digest"

    site_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    host_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    day: Mapped[str] = mapped_column(String(10), primary_key=True)
    sent_at_ms: Mapped[int] = mapped_column(BigInteger)


class AuditRow(Base):
    """Who did what to which visit or visitor, and when: ids only, no personal data."""

    __tablename__ = "visitors_audit"

    id: Mapped[int] = mapped_column(RowId, primary_key=True, autoincrement=True)
    site_id: Mapped[str] = mapped_column(String(32), index=True)
    action: Mapped[str] = mapped_column(String(32))
    actor_id: Mapped[str] = mapped_column(String(64))
    visit_id: Mapped[str | None] = mapped_column(String(32))
    visitor_id: Mapped[str | None] = mapped_column(String(32))
    at_ms: Mapped[int] = mapped_column(BigInteger)
