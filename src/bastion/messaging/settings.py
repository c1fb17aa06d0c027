"""Settings of the messaging module (``BASTION_MESSAGING__<FIELD>``).

BASTION_MESSAGING__WHATSAPP__BASE_URL=https://graph.facebook.com
BASTION_MESSAGING__WHATSAPP__PHONE_NUMBER_ID=106540352242922
BASTION_MESSAGING__WHATSAPP__ACCESS_TOKEN=EAAG...
BASTION_MESSAGING__WHATSAPP__APP_SECRET=...          # webhook signatures
BASTION_MESSAGING__WHATSAPP__VERIFY_TOKEN=...        # webhook handshake
BASTION_MESSAGING__PAIR_INTERVAL_SECONDS=6
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from bastion.core.settings import Problem

DAY = 86_400


class WhatsAppSettings(BaseModel):
    model_config = ConfigDict(frozen=True)

    base_url: str = "https://graph.facebook.com"
    api_version: str = "v21.0"
    """Pinned Graph API version (Meta's examples range v19-v23)."""
    phone_number_id: str = "0"
    access_token: SecretStr = SecretStr("")
    app_secret: SecretStr = SecretStr("")
    verify_token: SecretStr = SecretStr("")
    timeout_seconds: float = Field(15.0, gt=0)
    """One call to the API; a send is never retried inside one attempt (whether to send again is the
    pipeline's call)."""
    max_concurrent: int = Field(64, ge=1)
    """Calls in flight to the API, per process."""


class MessagingSettings(BaseModel):
    model_config = ConfigDict(frozen=True)

    whatsapp: WhatsAppSettings = WhatsAppSettings()
    max_attempts: int = Field(6, ge=1, le=50)
    """Attempts at the API per message before it fails and is parked in the dead-letter queue."""
    retry_delays_seconds: tuple[float, ...] = (2.0, 10.0, 60.0, 300.0)
    """The wait before attempt n+1 is the n-th entry (the last repeats), plus up to 20 % jitter; each is a
    wait queue on RabbitMQ."""
    lease_seconds: float = Field(60.0, gt=0)
    """How long one attempt holds a message; a holder that dies frees it after this (see docs, the window)."""
    throughput_per_second: int = Field(80, ge=1)
    """Sends per second per business number, across every worker (Meta's default: 80)."""
    pair_interval_seconds: float = Field(6.0, ge=0)
    """Shortest gap between two sends to one recipient, across every worker (Meta's pair rate: ~1 per 6 s)."""
    window_hours: float = Field(24.0, gt=0)
    """Free-form text only within this long after the contact's last inbound message."""
    enforce_window: bool = True
    opt_out_keywords: tuple[str, ...] = ("STOP", "UNSUBSCRIBE", "STOPALL", "CANCEL", "END", "QUIT")
    max_batch: int = Field(1000, ge=1, le=10_000)
    retention_days: int = Field(90, ge=1)
    dispatcher_batch: int = Field(64, ge=1, le=1000)
    dispatcher_concurrency: int = Field(16, ge=1, le=512)
    poll_seconds: float = Field(1.0, gt=0)
    """How often the embedded dispatcher and the relay look for due rows when nothing woke them."""
    oldest_unsent_alert_seconds: float = Field(300.0, gt=0)
    """Readiness of a worker fails when an accepted message has waited longer than this."""
    health_check: bool = False
    """Add the pipeline check (no consumer attached, oldest unsent too old) to this app's ``/health`` as a
    warning; off by default, since the API's readiness should not depend on the workers. The workers' own
    readiness probe is ``bastion messaging check``."""
    queue_prefix: str = "bastion.messaging"
    """Names of the RabbitMQ queues (``<prefix>.work``, ``.wait.<ms>``, ``.dead``)."""

    @model_validator(mode="before")
    @classmethod
    def _moved(cls, data: Any) -> Any:
        """The cron secret became core's: an old setting is an error that names the new one, not silently ignored."""
        if isinstance(data, dict) and "cron_secret" in data:
            raise ValueError("BASTION_MESSAGING__CRON_SECRET is gone: set BASTION_CRON_SECRET (core) instead")
        return data

    def problems(self, production: bool) -> list[Problem]:
        """Unset WhatsApp credentials are a warning (the module may be unused); half-set ones an error in
        production."""
        found: list[Problem] = []
        wa = self.whatsapp
        token, app_secret = wa.access_token.get_secret_value(), wa.app_secret.get_secret_value()
        if not production:
            return found
        if not token and wa.phone_number_id == "0":
            found.append(Problem("warning", "BASTION_MESSAGING__WHATSAPP__ACCESS_TOKEN", "WhatsApp is not configured"))
        else:
            if not token:
                found.append(Problem("error", "BASTION_MESSAGING__WHATSAPP__ACCESS_TOKEN", "set the Cloud API token"))
            if len(app_secret) < 16:
                found.append(
                    Problem("error", "BASTION_MESSAGING__WHATSAPP__APP_SECRET", "set the app secret (webhooks)")
                )
        return found
