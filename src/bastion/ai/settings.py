"""Settings of the AI gateway (``BASTION_AI__<FIELD>``): providers, models, caps and token budgets.

    BASTION_AI__PROVIDERS__OPENAI__KIND=openai
    BASTION_AI__PROVIDERS__OPENAI__API_KEY=sk-...
    BASTION_AI__PROVIDERS__CLAUDE__KIND=anthropic
    BASTION_AI__PROVIDERS__CLAUDE__API_KEY=sk-ant-...
    BASTION_AI__MODELS='{"gpt-4o": ["openai:gpt-4o", "claude:claude-sonnet-4-5"]}'
    BASTION_AI__ALIASES='{"openai/gpt-4o": "gpt-4o"}'
    BASTION_AI__DEFAULT_MODEL=gpt-4o

A model is an ordered chain of ``provider:upstream-model`` targets: the first is called, the next ones
are the fallbacks. The ``local`` provider (a development stand-in that answers without any network)
is always available, so the embedded default works on a fresh machine.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from bastion.core.settings import Problem

ProviderKind = Literal["openai", "anthropic", "local"]
LOCAL_PROVIDER = "local"
LOCAL_MODEL = "bastion-local-dev"
_DEFAULT_BASE_URL = {"openai": "https://api.openai.com/v1", "anthropic": "https://api.anthropic.com"}


class ProviderSettings(BaseModel):
    """One upstream: its wire format (``kind``), where it is, its key, and how hard Bastion may lean on it.

    ``kind=openai`` also serves every OpenAI-compatible server by ``base_url`` (Groq
    ``https://api.groq.com/openai/v1``, GitHub Models ``https://models.github.ai/inference``, Ollama
    ``http://localhost:11434/v1``, vLLM, llama.cpp).
    """

    model_config = ConfigDict(frozen=True)

    kind: ProviderKind = "openai"
    base_url: str | None = None
    api_key: SecretStr | None = None
    headers: dict[str, str] = {}
    """Extra request headers (e.g. ``OpenAI-Organization``); never logged."""
    timeout_seconds: float = Field(30.0, gt=0)
    """Whole call when not streaming; time to the response headers when streaming."""
    connect_timeout_seconds: float = Field(5.0, gt=0)
    read_timeout_seconds: float = Field(30.0, gt=0)
    """Longest silence between two pieces of a response (a stalled stream ends after this)."""
    retries: int = Field(2, ge=0, le=5)
    """Extra attempts before the first byte, on connection errors, 429 and 5xx only."""
    max_retry_wait_seconds: float = Field(2.0, ge=0)
    """A 429 asking to wait longer than this is not retried (the fallback is tried instead)."""
    max_concurrent: int = Field(1024, ge=1)
    """Bulkhead: calls (and open streams) in flight to this provider, per worker."""
    max_waiting: int = Field(256, ge=0)
    breaker_failures: int = Field(5, ge=1)
    """Consecutive failures (connection errors, timeouts, 429, 5xx) that open the circuit."""
    breaker_reset_seconds: float = Field(10.0, gt=0)
    streaming: bool = True
    """False for an upstream that cannot stream: streams are then served from one whole answer."""
    anthropic_version: str = "2023-06-01"

    @property
    def url(self) -> str:
        return (self.base_url or _DEFAULT_BASE_URL.get(self.kind, "")).rstrip("/")


class AiSettings(BaseModel):
    model_config = ConfigDict(frozen=True)

    providers: dict[str, ProviderSettings] = {}
    models: dict[str, list[str]] = {"default": [f"{LOCAL_PROVIDER}:{LOCAL_MODEL}"]}
    """Model name -> ordered ``provider:upstream-model`` targets (primary first, then fallbacks)."""
    aliases: dict[str, str] = {"openai/gpt-4o": "default", "openai/gpt-4o-mini": "default"}
    """Other names for models: the Spark client asks for ``openai/gpt-4o`` unless told otherwise."""
    default_model: str = "default"
    """Used when a request names no model (``/api/chat`` without ``model``)."""

    allow_anonymous: bool = False
    """Serve callers without a principal (rate-limited by address). Off: AI calls cost money."""
    max_tokens: int = Field(1000, ge=1)
    """Cap on ``max_tokens`` (and the value used when a request gives none)."""
    max_messages: int = Field(50, ge=1)
    max_total_chars: int = Field(50_000, ge=1)
    """Characters of text across all messages of one request."""
    chat_prompt_chars: int = Field(2_000, ge=1)
    """Longest ``/api/chat`` prompt."""
    spark_prompt_chars: int = Field(10_000, ge=1)
    """Longest single message sent to ``/_spark/llm``."""
    max_response_bytes: int = Field(10_240, ge=1)
    """Answer text beyond this (UTF-8 bytes) is cut at a character boundary; finish_reason ``length``."""
    max_body_bytes: int = Field(4 * 1_048_576, ge=1024)
    """Request body limit of the AI routes (images arrive inline as data: URLs)."""
    max_stream_seconds: float = Field(600.0, gt=0)
    """Longest a stream may stay open."""

    tokens_per_minute: int | None = Field(None, ge=1)
    """Token budget per API key or user (else client address) per minute, shared across instances."""
    tokens_per_day: int | None = Field(None, ge=1)

    @field_validator("models", mode="after")
    @classmethod
    def _targets_named(cls, models: dict[str, list[str]]) -> dict[str, list[str]]:
        for name, targets in models.items():
            if not targets:
                raise ValueError(f"model {name!r} has no targets")
            for target in targets:
                provider, sep, upstream = target.partition(":")
                if not sep or not provider or not upstream:
                    raise ValueError(f"model {name!r}: target {target!r} is not 'provider:upstream-model'")
        return models

    @model_validator(mode="after")
    def _references_resolve(self) -> AiSettings:
        known = set(self.all_providers())
        for name, targets in self.models.items():
            for target in targets:
                provider = target.partition(":")[0]
                if provider not in known:
                    raise ValueError(
                        f"model {name!r} routes to provider {provider!r}, which is not configured "
                        f"(BASTION_AI__PROVIDERS__{provider.upper()}__KIND=...)"
                    )
        for alias, target in self.aliases.items():
            if target not in self.models:
                raise ValueError(f"alias {alias!r} names model {target!r}, which is not configured")
        if self.default_model not in self.models and self.default_model not in self.aliases:
            raise ValueError(f"default_model {self.default_model!r} is not a configured model")
        return self

    def problems(self, production: bool) -> list[Problem]:
        """In production: a model served by the development ``local`` provider, and anonymous AI calls."""
        if not production:
            return []
        found: list[Problem] = []
        providers = self.all_providers()
        local = sorted(
            name
            for name, targets in self.models.items()
            if any(providers[t.partition(":")[0]].kind == LOCAL_PROVIDER for t in targets)
        )
        if local:
            message = f"model(s) {', '.join(local)} served by the development 'local' provider"
            found.append(Problem("warning", "BASTION_AI__MODELS", message))
        if self.allow_anonymous:
            found.append(Problem("warning", "BASTION_AI__ALLOW_ANONYMOUS", "anyone may spend the AI budget"))
        return found

    def all_providers(self) -> dict[str, ProviderSettings]:
        """The configured providers plus the always-available ``local`` one (unless overridden)."""
        return {LOCAL_PROVIDER: ProviderSettings(kind="local"), **self.providers}
