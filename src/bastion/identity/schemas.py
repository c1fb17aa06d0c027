"""API schemas of the identity module (msgspec), kept apart from the ORM models."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

import msgspec

Email = Annotated[str, msgspec.Meta(min_length=3, max_length=320)]
Password = Annotated[str, msgspec.Meta(min_length=1, max_length=1024)]
Mode = Literal["token", "cookie"]
"""``token``: tokens in the body (API clients); ``cookie``: httpOnly cookies plus a CSRF token (browsers)."""


class UserProfile(msgspec.Struct, kw_only=True):
    """Who a user is, as other modules see it (``/_spark/user`` is built from it)."""

    id: str
    email: str
    login: str
    display_name: str
    avatar_url: str | None
    role: Literal["owner", "admin", "user"]
    plan: str
    created_at: dt.datetime

    @property
    def is_owner(self) -> bool:
        return self.role == "owner"


class AdminUserView(UserProfile, kw_only=True):
    disabled: bool
    email_verified: bool
    last_seen_at: dt.datetime | None


class RegisterIn(msgspec.Struct, forbid_unknown_fields=True):
    email: Email
    password: Password
    login: Annotated[str, msgspec.Meta(max_length=64)] | None = None
    display_name: Annotated[str, msgspec.Meta(max_length=128)] | None = None
    invite: Annotated[str, msgspec.Meta(max_length=128)] | None = None
    mode: Mode = "token"


class LoginIn(msgspec.Struct, forbid_unknown_fields=True):
    email: Email
    password: Password
    mode: Mode = "token"


class RefreshIn(msgspec.Struct, forbid_unknown_fields=True):
    refresh_token: Annotated[str, msgspec.Meta(max_length=256)] | None = None
    """Token mode; in cookie mode the refresh cookie is used (and a CSRF header is required)."""


class SessionOut(msgspec.Struct, omit_defaults=True):
    user: UserProfile
    expires_in: int
    """Seconds the access token is valid."""
    token_type: str | None = None
    access_token: str | None = None
    refresh_token: str | None = None
    refresh_expires_at: dt.datetime | None = None
    csrf_token: str | None = None
    """Cookie mode: send it back in the ``X-CSRF-Token`` header on POST, PUT, PATCH and DELETE."""


class StatusOut(msgspec.Struct):
    authenticated: bool
    kind: str | None = None
    user: UserProfile | None = None
    scopes: list[str] = []
    csrf_token: str | None = None


Scope = Annotated[str, msgspec.Meta(pattern=r"^(\*|[a-z][a-z0-9_.:-]{0,63})$")]


class ApiKeyIn(msgspec.Struct, forbid_unknown_fields=True):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
    scopes: Annotated[list[Scope], msgspec.Meta(min_length=1, max_length=32)] = msgspec.field(
        default_factory=lambda: ["*"]
    )
    app: Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$")] | None = None
    """The app this key serves (the Spark runtime keeps one KV namespace per app)."""
    expires_in_days: Annotated[int, msgspec.Meta(ge=1, le=3650)] | None = None


class ApiKeyOut(msgspec.Struct, kw_only=True):
    id: str
    prefix: str
    """The visible start of the key (``bsk_<id>``), to recognise it; the rest is shown only at creation."""
    name: str
    scopes: list[str]
    app: str | None
    created_at: dt.datetime
    expires_at: dt.datetime | None
    last_used_at: dt.datetime | None


class ApiKeyCreated(ApiKeyOut, kw_only=True):
    key: str
    """The whole key. Shown once: only its hash is stored."""


class UserPatch(msgspec.Struct, forbid_unknown_fields=True):
    role: Literal["admin", "user"] | None = None
    plan: Literal["free", "pro"] | None = None
    disabled: bool | None = None


class InviteIn(msgspec.Struct, forbid_unknown_fields=True):
    email: Email | None = None
    role: Literal["admin", "user"] = "user"
    expires_in_days: Annotated[int, msgspec.Meta(ge=1, le=90)] = 7


class InviteOut(msgspec.Struct):
    token: str
    email: str | None
    role: str
    expires_at: dt.datetime
