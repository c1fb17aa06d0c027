"""Provider adapters: ``openai`` (and OpenAI-compatible servers), ``anthropic``, and ``local``."""

from __future__ import annotations

from bastion.ai.providers.anthropic import AnthropicProvider
from bastion.ai.providers.base import HttpSessions, Provider, Sender
from bastion.ai.providers.local import LocalProvider
from bastion.ai.providers.openai import OpenAIProvider
from bastion.ai.settings import ProviderSettings

__all__ = ["AnthropicProvider", "HttpSessions", "LocalProvider", "OpenAIProvider", "Provider", "build_provider"]


def build_provider(name: str, settings: ProviderSettings, sessions: HttpSessions) -> Provider:
    """The adapter for ``settings``; network adapters share ``sessions`` (one pooled session per provider)."""
    if settings.kind == "local":
        return LocalProvider()
    sender = Sender(name, settings, sessions)
    if settings.kind == "anthropic":
        return AnthropicProvider(settings, sender)
    return OpenAIProvider(settings, sender)
