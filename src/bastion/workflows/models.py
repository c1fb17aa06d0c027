"""SQL tables of the workflows module. Times are epoch milliseconds (compared alike on SQLite and PostgreSQL)."""

from __future__ import annotations

from sqlalchemy import BigInteger, Index, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from bastion.core.db import Base


class ConnectionRow(Base):
    """A GHL connection of a user: a location, or a company (agency) whose locations get tokens of their own.

    Tokens are encrypted with the core keyring, the location (or company) id bound in as associated data: a
    token copied into another row does not decrypt. ``token_version`` goes up with each refresh, so a
    refresh that lost a race does not overwrite the winner's rotated pair.
    """

    __tablename__ = "workflows_connection"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(64), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # "location" | "company"
    resource_id: Mapped[str] = mapped_column(String(64))  # the location id, or the company id
    company_id: Mapped[str | None] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200), default="")
    access_token: Mapped[bytes | None] = mapped_column(LargeBinary)
    refresh_token: Mapped[bytes | None] = mapped_column(LargeBinary)
    expires_at_ms: Mapped[int] = mapped_column(BigInteger, default=0)
    scope: Mapped[str] = mapped_column(String(1000), default="")
    status: Mapped[str] = mapped_column(String(16), default="active")  # active | reconnect | uninstalled
    token_version: Mapped[int] = mapped_column(Integer, default=0)
    lease_until_ms: Mapped[int] = mapped_column(BigInteger, default=0)
    """Held by the one worker refreshing the tokens (across instances: the row is shared)."""
    updated_at_ms: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (UniqueConstraint("user_id", "kind", "resource_id", name="uq_workflows_connection"),)


class WorkflowRow(Base):
    """A workflow known to a user: listed from GHL (metadata, a definition when fetched) or imported as JSON."""

    __tablename__ = "workflows_workflow"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(16))  # "ghl" | "import"
    location_id: Mapped[str] = mapped_column(String(64), default="")  # "" for an import
    external_id: Mapped[str] = mapped_column(String(200))
    name: Mapped[str] = mapped_column(String(500), default="")
    status: Mapped[str] = mapped_column(String(16), default="draft")
    version: Mapped[int] = mapped_column(Integer, default=0)
    definition: Mapped[str | None] = mapped_column(Text)  # the GHL-shaped JSON; None: metadata only
    updated_at_ms: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (
        UniqueConstraint("user_id", "source", "location_id", "external_id", name="uq_workflows_workflow"),
        Index("ix_workflows_workflow_user", "user_id", "name", "id"),
    )


class AnalysisRow(Base):
    """One analysis: every finding is kept (JSON, in report order); what a plan shows is decided when read."""

    __tablename__ = "workflows_analysis"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(64))
    workflow_id: Mapped[str] = mapped_column(String(32), index=True)
    workflow_name: Mapped[str] = mapped_column(String(500), default="")
    workflow_version: Mapped[int] = mapped_column(Integer)
    engine_version: Mapped[str] = mapped_column(String(64))
    score: Mapped[int] = mapped_column(Integer)
    grade: Mapped[str] = mapped_column(String(32))
    findings: Mapped[str] = mapped_column(Text)
    created_at_ms: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (Index("ix_workflows_analysis_history", "user_id", "created_at_ms", "id"),)


class OverrideRow(Base):
    """An account's choice about a rule: a severity, or ignore (``node_id`` "" for the whole rule)."""

    __tablename__ = "workflows_override"

    user_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    rule_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    node_id: Mapped[str] = mapped_column(String(200), primary_key=True, default="")
    action: Mapped[str] = mapped_column(String(16))  # "ignore" | "severity"
    severity: Mapped[str | None] = mapped_column(String(16))


class ReanalysisRow(Base):
    """A queued re-analysis (the outbox of the GHL webhook): written with the webhook's record, run by a job."""

    __tablename__ = "workflows_reanalysis"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    workflow_id: Mapped[str] = mapped_column(String(32))
    version: Mapped[int] = mapped_column(Integer)
    queued_at_ms: Mapped[int] = mapped_column(BigInteger, index=True)
    claimed_until_ms: Mapped[int] = mapped_column(BigInteger, default=0)
    attempts: Mapped[int] = mapped_column(Integer, default=0)


class WebhookEventRow(Base):
    """GHL webhook deliveries seen, by ``webhookId``: a redelivery is acknowledged and changes nothing."""

    __tablename__ = "workflows_webhook_event"

    webhook_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    type: Mapped[str] = mapped_column(String(64))
    received_at_ms: Mapped[int] = mapped_column(BigInteger, index=True)
