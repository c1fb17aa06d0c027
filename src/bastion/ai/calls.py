"""The AI gateway's value types: who a call is for, where it goes, and what came back."""

from __future__ import annotations

from dataclasses import dataclass

CANCELLED = "cancelled"
"""Outcome of a call whose caller went away (client disconnect, worker drain) before it ended."""


@dataclass(frozen=True, slots=True)
class Caller:
    """Who a call is for: the key token budgets are counted under (``user:42``, ``api_key:k1``, ``ip:...``)."""

    key: str


@dataclass(frozen=True, slots=True)
class Target:
    provider: str
    model: str


@dataclass(slots=True)
class Result:
    content: str
    finish_reason: str
    model: str
    prompt_tokens: int
    completion_tokens: int
