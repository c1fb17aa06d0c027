"""Small readers over step config shared by the rules (GHL exports name the same things several ways)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bastion.workflows.engine.model import Step

BODY_KEYS = ("message", "body", "html", "text", "content", "template")


def strings(config: Mapping[str, Any], key: str, *aliases: str) -> list[str]:
    """The non-empty strings under ``key`` (or an alias), whether given as one string or a list."""
    for k in (key, *aliases):
        value = config.get(k)
        if isinstance(value, str):
            return [value.strip()] if value.strip() else []
        if isinstance(value, list):
            return [v.strip() for v in value if isinstance(v, str) and v.strip()]
    return []


def body(step: Step) -> str:
    for k in BODY_KEYS:
        value = step.config.get(k)
        if isinstance(value, str) and value.strip():
            return value
    return ""


def channel(step: Step) -> str:
    t = step.type.lower()
    for name in ("sms", "email", "whatsapp", "voicemail", "messenger", "instagram", "gmb", "live_chat", "call"):
        if name in t:
            return name
    return t


def label(step: Step) -> str:
    return step.name or step.id
