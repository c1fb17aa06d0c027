"""Rows as the API shows them: the ORM models stay inside identity, these schemas leave it."""

from __future__ import annotations

from typing import Literal, cast

from bastion.identity import tokens
from bastion.identity.models import ApiKey, User
from bastion.identity.schemas import AdminUserView, ApiKeyOut, UserProfile

Role = Literal["owner", "admin", "user"]


def as_profile(user: User) -> UserProfile:
    return UserProfile(
        id=user.id,
        email=user.email,
        login=user.login,
        display_name=user.display_name,
        avatar_url=user.avatar_url,
        role=cast("Role", user.role),
        plan=user.plan,
        created_at=user.created_at,
    )


def as_admin_view(user: User) -> AdminUserView:
    return AdminUserView(
        id=user.id,
        email=user.email,
        login=user.login,
        display_name=user.display_name,
        avatar_url=user.avatar_url,
        role=cast("Role", user.role),
        plan=user.plan,
        created_at=user.created_at,
        disabled=user.disabled,
        email_verified=user.email_verified,
        last_seen_at=user.last_seen_at,
    )


def as_key_view(key: ApiKey) -> ApiKeyOut:
    return ApiKeyOut(
        id=key.id,
        prefix=f"{tokens.API_KEY_PREFIX}{key.id}",
        name=key.name,
        scopes=list(key.scopes),
        app=key.app,
        created_at=key.created_at,
        expires_at=key.expires_at,
        last_used_at=key.last_used_at,
    )
