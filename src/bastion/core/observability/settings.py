"""Settings of the opt-in observability, apart from the code that uses them so that reading them imports nothing."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr


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


class OtelSettings(BaseModel):
    """Opt-in traces (``tracing.py``): ``BASTION_OTEL__ENDPOINT=http://collector:4318`` turns them on.

    Spans go by OTLP over HTTP (protobuf) to ``<endpoint>/v1/traces`` (an endpoint that already ends in
    ``/v1/traces`` is used as it is), in batches from a background thread."""

    model_config = ConfigDict(frozen=True)

    endpoint: str | None = None
    sample_ratio: float = Field(0.1, ge=0.0, le=1.0)
    """The share of new traces recorded; a trace a trusted caller started keeps that caller's decision."""
    service_name: str = "bastion"
    headers: dict[str, SecretStr] = {}
    """Sent with every export (a collector's API key): ``BASTION_OTEL__HEADERS='{"x-api-key": "..."}'``."""
    timeout_seconds: float = Field(5.0, gt=0, le=60)
    max_queue_size: int = Field(2048, ge=16)
    """Finished spans waiting for export; beyond that new ones are dropped (the SDK counts them)."""
    schedule_delay_ms: int = Field(1000, ge=10)
    trace_store: bool = True
    """A span per fast-store call (Redis or memory)."""

    @property
    def traces_url(self) -> str | None:
        if self.endpoint is None:
            return None
        base = self.endpoint.rstrip("/")
        return base if base.endswith("/v1/traces") else base + "/v1/traces"
