"""The messaging API's request and response bodies (msgspec). Phone numbers are E.164 (``+`` and 8-15 digits)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import msgspec

Phone = Annotated[str, msgspec.Meta(max_length=32)]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=512)]
Language = Annotated[str, msgspec.Meta(min_length=2, max_length=16)]
Param = Annotated[str, msgspec.Meta(max_length=1024)]


class TemplateRef(msgspec.Struct, forbid_unknown_fields=True):
    name: Name
    language: Language = "en"
    params: Annotated[list[Param], msgspec.Meta(max_length=100)] = []


class SendMessage(msgspec.Struct, forbid_unknown_fields=True):
    """Text or a template, to one recipient; ``send_at`` schedules it."""

    to: Phone
    text: Annotated[str, msgspec.Meta(max_length=65_536)] | None = None
    template: TemplateRef | None = None
    send_at: dt.datetime | None = None


class Recipient(msgspec.Struct, forbid_unknown_fields=True):
    to: Phone
    params: Annotated[list[Param], msgspec.Meta(max_length=100)] = []


class BatchTemplate(msgspec.Struct, forbid_unknown_fields=True):
    name: Name
    language: Language = "en"


class SendBatch(msgspec.Struct, forbid_unknown_fields=True):
    """One template to many recipients, each with its own parameters."""

    template: BatchTemplate
    recipients: Annotated[list[Recipient], msgspec.Meta(min_length=1, max_length=10_000)]
    send_at: dt.datetime | None = None


class Accepted(msgspec.Struct):
    id: str
    status: str


class BatchAccepted(msgspec.Struct):
    ids: list[str]


class StatusEntry(msgspec.Struct, omit_defaults=True):
    status: str
    at: dt.datetime
    code: int | None = None
    reason: str | None = None


class MessageView(msgspec.Struct):
    id: str
    to: str
    kind: str
    status: str
    attempts: int
    created_at: dt.datetime
    send_at: dt.datetime
    wamid: str | None
    error_code: int | None
    error_reason: str | None
    timeline: list[StatusEntry]


class MessageSummary(msgspec.Struct):
    id: str
    to: str
    kind: str
    status: str
    attempts: int
    created_at: dt.datetime


class MessagePage(msgspec.Struct):
    items: list[MessageSummary]
    next_cursor: str | None


class NewContact(msgspec.Struct, forbid_unknown_fields=True):
    phone: Phone
    name: Annotated[str, msgspec.Meta(max_length=200)] | None = None
    consent_at: dt.datetime | None = None
    consent_source: Annotated[str, msgspec.Meta(max_length=200)] | None = None


class ContactView(msgspec.Struct):
    id: str
    phone: str
    name: str | None
    consent_at: dt.datetime | None
    consent_source: str | None
    opted_out: bool
    suppressed_code: int | None
    window_open_until: dt.datetime | None


class NewTemplate(msgspec.Struct, forbid_unknown_fields=True):
    name: Name
    language: Language = "en"
    param_count: Annotated[int, msgspec.Meta(ge=0, le=100)] = 0


class TemplateView(msgspec.Struct):
    id: str
    name: str
    language: str
    param_count: int
