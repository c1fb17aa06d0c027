"""Settings of the production core.

Every value comes from the environment (prefix ``BASTION_``, nesting with ``__``) or a ``.env`` file,
is validated once when the app is built, and is passed down from there; nothing else reads
``os.environ``. The root :class:`bastion.settings.Settings` extends :class:`CoreSettings` with one
field per module.

Example::

    BASTION_ENV=production
    BASTION_DATABASE_URL=postgresql+asyncpg://bastion@db/bastion
    BASTION_REDIS_URL=redis://cache:6379/0
    BASTION_ALLOWED_HOSTS='["api.example.com"]'
    BASTION_RATE_LIMITS__AI=20/minute
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from bastion.core.observability.reports import ReportSettings
from bastion.core.observability.settings import OtelSettings, SentrySettings

_PERIODS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}
_RATE = re.compile(r"^\s*(\d+)\s*/\s*(second|minute|hour|day)s?\s*$", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Rate:
    """A quota: ``limit`` requests per ``window`` seconds, written as ``"60/minute"``."""

    limit: int
    window: int

    @classmethod
    def parse(cls, text: str) -> Rate:
        match = _RATE.match(text)
        if not match or int(match.group(1)) < 1:
            raise ValueError(f"rate {text!r} is not '<N>/<second|minute|hour|day>' with N >= 1")
        return cls(int(match.group(1)), _PERIODS[match.group(2).lower()])

    def __str__(self) -> str:
        unit = {v: k for k, v in _PERIODS.items()}.get(self.window)
        return f"{self.limit}/{unit}" if unit else f"{self.limit}/{self.window}s"


class RateLimits(BaseModel):
    """Rate-limit overrides as ``"<N>/<second|minute|hour|day>"``, by tier name. The core declares
    ``general``; each module declares its own tiers with their defaults (``Module.tiers``), and any of them
    is overridden here (``BASTION_RATE_LIMITS__SECRETS_CREATE=5/minute``)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    general: str = "60/minute"

    @field_validator("*", mode="after")
    @classmethod
    def _valid(cls, value: str) -> str:
        return str(Rate.parse(value))

    @model_validator(mode="after")
    def _valid_extra(self) -> RateLimits:
        for name, value in (self.model_extra or {}).items():
            try:
                Rate.parse(str(value))
            except ValueError as exc:
                raise ValueError(f"tier {name}: {exc}") from None
        return self

    def tiers(self) -> dict[str, Rate]:
        """Every configured tier, the extra ones included."""
        found = {name: Rate.parse(getattr(self, name)) for name in type(self).model_fields}
        for name, value in (self.model_extra or {}).items():
            found[name.lower()] = Rate.parse(str(value))
        return found


class AdmissionSettings(BaseModel):
    """How the admission stage bans abusers and behaves when its store is down."""

    model_config = ConfigDict(frozen=True)

    enabled: bool = True
    ban_multiplier: float = Field(5.0, ge=1.5)
    ban_seconds: int = Field(86_400, ge=1)
    fail_closed_tiers: list[str] | None = None
    """The tiers that refuse requests while the limiter's store is down; None: each tier as its module
    declares it (sign-in and secret creation fail closed)."""
    deny_cache: bool = True
    store_timeout_seconds: float = Field(0.25, gt=0)
    memory_max_clients: int = Field(50_000, ge=1)
    """The most clients one worker remembers per tier in memory (the in-process limiter, the fallback
    while Redis is down, the deny cache; as many bans, plus a quarter more IPv6 /64 groups). At the cap
    a client is forgotten only once forgetting it changes nothing; see ``core/ratelimit/memory.py``."""


class CryptoSettings(BaseModel):
    """Master keys for encryption at rest: ``{"key id": "base64 of 32 random bytes"}``.

    New ciphertexts use ``active_key_id``; any listed key still decrypts, so a key is rotated by adding
    a new one, making it active, and removing the old one once nothing references it. Left empty in
    development, a key is generated into ``DATA_DIR/keys.json`` (production refuses that).
    """

    model_config = ConfigDict(frozen=True)

    keys: Annotated[dict[str, SecretStr], NoDecode] = {}
    """JSON ``{"k1": "<key>"}``, ``k1=<key>,k2=<key>``, or the bare output of ``bastion new-master-key``
    (then its id is ``k1``)."""
    active_key_id: str | None = None
    """Defaults to the only key when there is one."""

    @field_validator("keys", mode="before")
    @classmethod
    def _key_forms(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        text = value.strip()
        if text.startswith("{"):
            import json

            try:
                return json.loads(text)
            except ValueError:
                raise ValueError('not valid JSON; expected {"k1": "<key from bastion new-master-key>"}') from None
        if "=" in text.rstrip("="):  # base64 ends in '=' padding; a k1=... pair has one before the key
            pairs = [part.strip().partition("=") for part in text.split(",") if part.strip()]
            return {kid.strip(): key.strip() for kid, _, key in pairs}
        return {"k1": text} if text else {}

    @field_validator("keys", mode="after")
    @classmethod
    def _keys_are_32_bytes(cls, value: dict[str, SecretStr]) -> dict[str, SecretStr]:
        import base64
        import binascii

        for kid, key in value.items():
            try:
                raw = base64.b64decode(key.get_secret_value(), validate=True)
            except binascii.Error:
                raw = b""
            if len(raw) != 32:
                raise ValueError(f"key {kid!r} is not the base64 of 32 bytes (`bastion new-master-key` prints one)")
        return value

    @model_validator(mode="after")
    def _only_key_is_active(self) -> CryptoSettings:
        if self.active_key_id is None and len(self.keys) == 1:
            object.__setattr__(self, "active_key_id", next(iter(self.keys)))
        return self


class ServerSettings(BaseModel):
    model_config = ConfigDict(frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    workers: int = Field(1, ge=1, le=64)
    server: Literal["granian", "uvicorn"] = "granian"
    loop: Literal["uvloop", "asyncio"] = "uvloop"
    """The event loop of the workers: uvloop (libuv) serves about 12 % more requests per second than the
    standard library's loop under the full edge (docs/benchmarks.md); asyncio where uvloop is missing."""


class CoreSettings(BaseSettings):
    """Configuration of the production core; see docs/operations.md for every field."""

    model_config = SettingsConfigDict(
        env_prefix="BASTION_",
        env_nested_delimiter="__",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        frozen=True,
        nested_model_default_partial_update=True,
    )

    env: Literal["development", "production"] = "development"
    data_dir: Path = Path("./data")
    database_url: str | None = None
    redis_url: SecretStr | None = None
    redis_prefix: str = "bastion:"
    amqp_url: SecretStr | None = None

    trusted_proxies: Annotated[list[ipaddress.IPv4Network | ipaddress.IPv6Network], NoDecode] = []
    cors_origins: Annotated[list[str], NoDecode] = []
    cors_allow_credentials: bool = False
    allowed_hosts: Annotated[list[str], NoDecode] = ["localhost", "127.0.0.1", "[::1]"]

    max_body_bytes: int = Field(1_048_576, ge=1)
    max_url_length: int = Field(2048, ge=64)
    max_header_bytes: int = Field(8192, ge=1024)
    json_max_depth: int = Field(64, ge=2, le=512)
    """How deeply a JSON body may nest arrays and objects (``core/jsonbody.py``); deeper is a 400."""
    allowed_methods: Annotated[list[str], NoDecode] = [
        "GET",
        "HEAD",
        "POST",
        "PUT",
        "PATCH",
        "DELETE",
        "OPTIONS",
    ]

    shutdown_grace_seconds: float = Field(25.0, gt=0)
    body_idle_timeout_seconds: float = Field(10.0, gt=0)
    """Longest wait for the next piece of a request body; then a 408 and the connection closes."""
    body_timeout_seconds: float = Field(60.0, gt=0)
    """Longest time to receive a whole request body, however it trickles in; then a 408."""
    response_write_timeout_seconds: float = Field(30.0, gt=0)
    """Longest wait for a slow reader to take one large or streamed piece of a response; then the
    connection is closed."""
    security_contact: str | None = None
    health_token: SecretStr | None = None
    metrics_token: SecretStr | None = None
    cron_secret: SecretStr | None = None
    """Bearer secret of ``POST /cron/{job}`` (``core/jobs/cron.py``); unset, the route answers 404. Production
    refuses to start without a strong one (at least 32 random characters)."""

    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["auto", "json", "console"] = "auto"
    slow_request_ms: float = Field(1000.0, gt=0)
    memory_warn_mb: int = Field(512, ge=16)
    memory_check_seconds: float = Field(30.0, gt=0)

    db_pool_size: int = Field(10, ge=1)
    db_max_overflow: int = Field(10, ge=0)
    db_timeout_seconds: float = Field(5.0, gt=0)
    db_statement_timeout_seconds: float = Field(15.0, gt=0)
    """Longest a statement may wait for PostgreSQL's answer (asyncpg's ``command_timeout``); then 503."""

    idempotency_ttl_seconds: int = Field(86_400, ge=60)
    auto_migrate: bool | None = None
    """Apply migrations at start-up; by default only for the embedded SQLite database."""

    rate_limits: RateLimits = RateLimits()
    admission: AdmissionSettings = AdmissionSettings()
    crypto: CryptoSettings = CryptoSettings()
    server: ServerSettings = ServerSettings()
    reports: ReportSettings = ReportSettings()
    sentry_dsn: SecretStr | None = None
    """Opt-in error tracking (``core/observability/sentry.py``): unset, nothing of Sentry is loaded."""
    sentry: SentrySettings = SentrySettings()
    otel: OtelSettings = OtelSettings()
    """Opt-in traces (``core/observability/tracing.py``): unset endpoint, nothing of OpenTelemetry is loaded."""

    @field_validator("trusted_proxies", "cors_origins", "allowed_hosts", "allowed_methods", mode="before")
    @classmethod
    def _split_list(cls, value: Any) -> Any:
        """Accept a JSON list or a comma-separated string."""
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                import json

                return json.loads(text)
            return [part.strip() for part in text.split(",") if part.strip()]
        return value

    @field_validator("trusted_proxies", mode="after")
    @classmethod
    def _networks(cls, value: list[Any]) -> list[Any]:
        return [ipaddress.ip_network(str(net), strict=False) for net in value]

    @field_validator("allowed_methods", mode="after")
    @classmethod
    def _upper(cls, value: list[str]) -> list[str]:
        return [method.upper() for method in value]

    @property
    def is_production(self) -> bool:
        return self.env == "production"

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{self.data_dir.resolve() / 'bastion.db'}"

    @property
    def uses_sqlite(self) -> bool:
        return self.resolved_database_url.startswith("sqlite")

    @property
    def migrates_on_start(self) -> bool:
        return self.uses_sqlite if self.auto_migrate is None else self.auto_migrate

    @property
    def json_logs(self) -> bool:
        return self.log_format == "json" or (self.log_format == "auto" and self.is_production)

    def _observability_problems(self) -> list[Problem]:
        """Opt-in error tracking and traces sent in clear, or traces at a ratio that costs every request."""
        found = []
        if self.sentry_dsn is not None and _in_clear(self.sentry_dsn.get_secret_value()):
            found.append(
                Problem("warning", "BASTION_SENTRY_DSN", "http:// sends stack traces and the DSN key in clear")
            )
        endpoint = self.otel.endpoint
        if endpoint is not None and _in_clear(endpoint) and self.otel.headers:
            found.append(Problem("warning", "BASTION_OTEL__ENDPOINT", "http:// sends OTEL__HEADERS (a key) in clear"))
        if endpoint is not None and self.is_production and self.otel.sample_ratio > 0.5:
            found.append(
                Problem(
                    "warning",
                    "BASTION_OTEL__SAMPLE_RATIO",
                    "above 0.5 tracing costs about 100 µs of CPU per request; see docs/benchmarks.md",
                )
            )
        return found

    def _cron_problems(self) -> list[Problem]:
        """No cron secret is an error in production (the route is off in development); a weak one is an error in
        production and a warning in development."""
        secret = self.cron_secret.get_secret_value() if self.cron_secret is not None else ""
        hint = f"set at least {CRON_SECRET_MIN_LENGTH} random characters, e.g. `bastion new-cron-secret`"
        if not secret:
            return [Problem("error", "BASTION_CRON_SECRET", f"not set; {hint}")] if self.is_production else []
        if weak_secret(secret):
            severity: Literal["error", "warning"] = "error" if self.is_production else "warning"
            return [Problem(severity, "BASTION_CRON_SECRET", f"too weak; {hint}")]
        return []

    def problems(self) -> list[Problem]:
        """Every unsafe or inconsistent setting: errors in production, warnings in development."""
        severity: Literal["error", "warning"] = "error" if self.is_production else "warning"
        found: list[Problem] = []

        def add(setting: str, message: str) -> None:
            found.append(Problem(severity, setting, message))

        if not self.crypto.keys:
            add("BASTION_CRYPTO__KEYS", "no master key is configured; a generated key in DATA_DIR is in use")
        elif self.crypto.active_key_id not in self.crypto.keys:
            found.append(Problem("error", "BASTION_CRYPTO__ACTIVE_KEY_ID", "must name one of CRYPTO__KEYS"))
        if "*" in self.cors_origins and self.cors_allow_credentials:
            add("BASTION_CORS_ORIGINS", "'*' with CORS_ALLOW_CREDENTIALS lets any site act as the user")
        if not self.allowed_hosts or "*" in self.allowed_hosts:
            add("BASTION_ALLOWED_HOSTS", "set the host names this service answers for (not '*')")
        elif self.is_production and set(self.allowed_hosts) <= {"localhost", "127.0.0.1", "[::1]"}:
            add("BASTION_ALLOWED_HOSTS", "only local host names are allowed; set the public host names")
        if not self.security_contact:
            add("BASTION_SECURITY_CONTACT", "security.txt needs a contact (mailto: or https: URI)")
        if self.is_production and self.metrics_token is None:
            found.append(
                Problem("warning", "BASTION_METRICS_TOKEN", "/metrics is public; set a token or keep the port private")
            )
        if self.uses_sqlite and self.server.workers > 1:
            found.append(
                Problem(
                    "warning",
                    "BASTION_DATABASE_URL",
                    "SQLite with several workers serialises writes; use PostgreSQL to scale",
                )
            )
        found.extend(self._observability_problems())
        found.extend(self._cron_problems())
        if self.redis_url is None and self.server.workers > 1:
            found.append(
                Problem(
                    "warning", "BASTION_REDIS_URL", "without Redis, limits, bans and one-time claims are per worker"
                )
            )
        return found


CRON_SECRET_MIN_LENGTH = 32


def weak_secret(secret: str) -> bool:
    """Shorter than 32 characters, or so repetitive that it cannot be random (fewer than 10 distinct ones)."""
    return len(secret) < CRON_SECRET_MIN_LENGTH or len(set(secret)) < 10


def _in_clear(url: str) -> bool:
    """An ``http://`` URL to a host other than this machine."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return parts.scheme == "http" and parts.hostname not in {"localhost", "127.0.0.1", "::1"}


@dataclass(frozen=True, slots=True)
class Problem:
    severity: Literal["error", "warning"]
    setting: str
    message: str

    def __str__(self) -> str:
        return f"{self.severity}: {self.setting}: {self.message}"
