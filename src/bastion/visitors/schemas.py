"""The visitors API's request and response bodies (msgspec). Phones are E.164; times are ISO 8601 with a zone."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

import msgspec

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Phone = Annotated[str, msgspec.Meta(max_length=32)]
Clock = Annotated[str, msgspec.Meta(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")]
Role = Literal["host", "guard", "admin"]
Id = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]


class NewSite(msgspec.Struct, forbid_unknown_fields=True):
    name: Name
    timezone: Annotated[str, msgspec.Meta(min_length=1, max_length=64)] = "UTC"
    quiet_start: Clock | None = None
    quiet_end: Clock | None = None


class SiteView(msgspec.Struct):
    id: str
    name: str
    timezone: str
    quiet_start: str | None
    quiet_end: str | None
    roles: list[str]


class NewMember(msgspec.Struct, forbid_unknown_fields=True):
    account_id: Id
    role: Role
    name: Name | None = None
    phone: Phone | None = None


class MemberView(msgspec.Struct):
    account_id: str
    role: str
    name: str | None
    phone: str | None


class Consent(msgspec.Struct, forbid_unknown_fields=True):
    """When and how the visitor agreed to WhatsApp messages (e.g. "verbal, at the gate", "web form")."""

    at: dt.datetime
    method: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]


class NewVisitor(msgspec.Struct, forbid_unknown_fields=True):
    site_id: Id
    name: Name
    phone: Phone | None = None
    consent: Consent | None = None


class VisitorPatch(msgspec.Struct, forbid_unknown_fields=True):
    name: Name | msgspec.UnsetType = msgspec.UNSET
    phone: Phone | msgspec.UnsetType | None = msgspec.UNSET
    consent: Consent | msgspec.UnsetType | None = msgspec.UNSET
    blocked: bool | msgspec.UnsetType = msgspec.UNSET


class VisitorView(msgspec.Struct):
    id: str
    site_id: str
    name: str | None
    phone: str | None
    consent: Consent | None
    blocked: bool
    has_photo: bool
    has_id_document: bool
    created_at: dt.datetime
    erased: bool


class NewVisit(msgspec.Struct, forbid_unknown_fields=True):
    """A host invites (``host_id`` is the caller); a guard registers a walk-up for ``host_id`` to approve."""

    visitor_id: Id
    starts_at: dt.datetime
    ends_at: dt.datetime
    host_id: Id | None = None
    purpose: Annotated[str, msgspec.Meta(max_length=500)] | None = None


class PassScan(msgspec.Struct, forbid_unknown_fields=True):
    """The pass code scanned at the gate of ``site_id``."""

    code: Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
    site_id: Id


class VisitView(msgspec.Struct, omit_defaults=True):
    id: str
    site_id: str
    visitor_id: str
    host_id: str
    status: str
    starts_at: dt.datetime
    ends_at: dt.datetime
    purpose: str | None = None
    checked_in_at: dt.datetime | None = None
    checked_out_at: dt.datetime | None = None
    pass_code: str | None = None
    """Only in the answer that issued the pass (it is stored hashed)."""
    message_id: str | None = None
    """The message the transition caused (the pass, the arrival notice), when one was sent."""


class VisitPage(msgspec.Struct):
    items: list[VisitView]
    next_cursor: str | None


class AuditEntry(msgspec.Struct, omit_defaults=True):
    action: str
    actor_id: str
    at: dt.datetime
    visit_id: str | None = None
    visitor_id: str | None = None
