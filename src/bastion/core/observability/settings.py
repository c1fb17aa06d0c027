"""Settings of the opt-in observability, apart from the code that uses them so that reading them imports nothing."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class SentrySettings(BaseModel):
    """Tuning of the Sentry client (``sentry.py``); the DSN itself is ``BASTION_SENTRY_DSN``, a secret."""

    model_config = ConfigDict(frozen=True)

    sample_rate: float = Field(1.0, ge=0.0, le=1.0)
    """The share of errors sent."""
    queue_size: int = Field(100, ge=1, le=10_000)
    """Events waiting for the transport's thread; beyond that new ones are dropped."""
    timeout_seconds: float = Field(5.0, ge=1, le=60)
    """One HTTP call to the ingest, in the transport's thread."""
    shutdown_timeout: float = Field(2.0, ge=0, le=30)
    """At drain, how long queued events may take to leave."""
