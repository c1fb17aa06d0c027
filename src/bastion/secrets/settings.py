"""Settings of the secrets module (``BASTION_SECRETS__<FIELD>``).

BASTION_SECRETS__BACKEND=redis              # store secrets in Redis (needs BASTION_REDIS_URL)
BASTION_SECRETS__MAX_SECRET_BYTES=131072    # allow 128 KiB secrets
BASTION_SECRETS__PUBLIC_URL=https://secrets.example.com
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

DAY = 86_400


class SecretsSettings(BaseModel):
    model_config = ConfigDict(frozen=True)

    backend: Literal["sql", "redis"] = "sql"
    """Where secrets live: the SQL database (SQLite or PostgreSQL) or Redis (native TTLs)."""
    public_url: str | None = None
    """Origin used in the links handed out (``https://secrets.example.com``); by default the request's."""

    max_secret_bytes: int = Field(65_536, ge=1, le=16 * 1_048_576)
    """Largest secret: UTF-8 bytes of a plaintext, or of the encoded ciphertext for a browser-encrypted one
    (which may be up to 4/3 of this plus 40 bytes: base64 of the IV, the plaintext and the tag)."""
    min_ttl_seconds: int = Field(300, ge=1)
    default_ttl_seconds: int = Field(DAY, ge=1)
    max_ttl_seconds: int = Field(30 * DAY, ge=1)
    max_ttl_anonymous_seconds: int = Field(7 * DAY, ge=1)
    max_views: int = Field(100, ge=1, le=10_000)
    allow_anonymous: bool = True
    """Anonymous callers may create secrets (with the anonymous caps below)."""

    max_live_per_client: int = Field(100, ge=1)
    """Live secrets per anonymous client (an IPv4 address or an IPv6 /64)."""
    max_live_per_user: int = Field(1000, ge=1)
    max_total_bytes: int = Field(512 * 1_048_576, ge=1)
    """Cap on the ciphertext bytes of all live secrets together."""

    passphrase_attempts: int = Field(5, ge=1)
    lockout_seconds: int = Field(1800, ge=1)
    argon2_time_cost: int = Field(3, ge=1)
    argon2_memory_kib: int = Field(65_536, ge=8)
    argon2_parallelism: int = Field(1, ge=1)
    argon2_max_concurrent: int = Field(2, ge=1)
    """Passphrase hashes computed at once (each takes ``argon2_memory_kib``); more wait up to 2 s, then 503."""

    purge_interval_seconds: float = Field(60.0, gt=0)
    audit_retention_seconds: int = Field(7 * DAY, ge=0)
    """How long after expiry a secret's audit trail stays readable by its creator."""

    @model_validator(mode="after")
    def _ttl_order(self) -> SecretsSettings:
        if not self.min_ttl_seconds <= self.default_ttl_seconds <= self.max_ttl_seconds:
            raise ValueError("need min_ttl_seconds <= default_ttl_seconds <= max_ttl_seconds")
        if not self.min_ttl_seconds <= self.max_ttl_anonymous_seconds <= self.max_ttl_seconds:
            raise ValueError("need min_ttl_seconds <= max_ttl_anonymous_seconds <= max_ttl_seconds")
        return self

    @property
    def max_body_bytes(self) -> int:
        """The create route's body limit: the largest secret, JSON-escaped (about 2x), plus the envelope."""
        return 2 * self.max_secret_bytes + 8192
