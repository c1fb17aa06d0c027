"""HTTP routes of the identity module: thin handlers over its parts (:class:`~bastion.identity.wiring.IdentityParts`).

    POST   /auth/register            account + session            (auth tier)
    POST   /auth/login               password sign-in             (auth tier; also 5/min per account)
    POST   /auth/refresh             rotate the refresh token
    POST   /auth/logout              end the session
    POST   /auth/password            change password (ends every session)
    GET    /auth/status              who am I (and the CSRF token in cookie mode)
    GET    /auth/login/{provider}    → the provider (OAuth code + PKCE + state)
    GET    /auth/callback/{provider} ← the provider; signs in, links or creates the account
    POST   /api/keys   GET /api/keys   DELETE /api/keys/{id}
    GET    /api/users  PATCH /api/users/{id}  POST /api/invites        (owner, admin)

``mode: "token"`` puts the tokens in the body; ``mode: "cookie"`` sets httpOnly cookies (access on ``/``,
refresh on ``/auth`` only) and a readable CSRF cookie whose value must come back in ``X-CSRF-Token``.
"""

from __future__ import annotations

import datetime as dt
import hmac
from typing import Annotated

import msgspec
from litestar import Response, delete, get, patch, post
from litestar.datastructures import Cookie
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter
from litestar.response import Redirect

from bastion.core.dependencies import AppRequest
from bastion.core.pagination import Limit, Offset, Page
from bastion.core.principal import require_role_of, require_scope_of, require_user
from bastion.identity.errors import CsrfFailed, InvalidToken, RefreshRejected
from bastion.identity.schemas import (
    AdminUserView,
    ApiKeyCreated,
    ApiKeyIn,
    ApiKeyOut,
    InviteIn,
    InviteOut,
    LoginIn,
    Mode,
    RefreshIn,
    RegisterIn,
    SessionOut,
    StatusOut,
    UserPatch,
)
from bastion.identity.sessions import IssuedSession, SessionMeta
from bastion.identity.wiring import IdentityParts

Identity = NamedDependency[IdentityParts]
STATE_COOKIE = "bastion_oauth_state"


class PasswordChange(msgspec.Struct, forbid_unknown_fields=True):
    current_password: Annotated[str, msgspec.Meta(max_length=1024)]
    new_password: Annotated[str, msgspec.Meta(max_length=1024)]


def _meta(request: AppRequest) -> SessionMeta:
    return SessionMeta(client=request.context.client, user_agent=request.headers.get("user-agent"))


def _cookie(
    identity: IdentityParts, name: str, value: str, *, max_age: int, path: str = "/", httponly: bool = True
) -> Cookie:
    return Cookie(
        key=name,
        value=value,
        max_age=max_age,
        path=path,
        httponly=httponly,
        secure=identity.secure_cookies,
        samesite="lax",
        domain=identity.config.cookie_domain,
    )


def _session_cookies(identity: IdentityParts, issued: IssuedSession) -> list[Cookie]:
    c = identity.config
    refresh_age = max(0, int((issued.refresh_expires_at - dt.datetime.now(dt.UTC)).total_seconds()))
    return [
        # Sliding sessions: the cookie outlives its token, so the edge can renew it (sliding.py).
        _cookie(
            identity,
            c.cookie_access,
            issued.access_token,
            max_age=refresh_age if c.sliding_sessions else issued.access_expires_in,
        ),
        _cookie(identity, c.cookie_refresh, issued.refresh_token, max_age=refresh_age, path="/auth"),
        _cookie(identity, c.cookie_csrf, issued.csrf_token, max_age=refresh_age, httponly=False),
    ]


def _cleared_cookies(identity: IdentityParts) -> list[Cookie]:
    c = identity.config
    return [
        _cookie(identity, c.cookie_access, "", max_age=0),
        _cookie(identity, c.cookie_refresh, "", max_age=0, path="/auth"),
        _cookie(identity, c.cookie_csrf, "", max_age=0, httponly=False),
    ]


def _session_response(
    identity: IdentityParts, issued: IssuedSession, mode: Mode, status: int = 200
) -> Response[SessionOut]:
    if mode == "token":
        body = SessionOut(
            user=issued.user,
            expires_in=issued.access_expires_in,
            token_type="Bearer",  # noqa: S106 - the OAuth token type name, not a secret
            access_token=issued.access_token,
            refresh_token=issued.refresh_token,
            refresh_expires_at=issued.refresh_expires_at,
        )
        return Response(body, status_code=status)
    return Response(
        SessionOut(
            user=issued.user,
            expires_in=issued.access_expires_in,
            refresh_expires_at=issued.refresh_expires_at,
            csrf_token=issued.csrf_token,
        ),
        status_code=status,
        cookies=_session_cookies(identity, issued),
    )


async def _optional_body(request: AppRequest, kind: type[RefreshIn]) -> RefreshIn:
    """``/auth/refresh`` and ``/auth/logout`` take an optional JSON body (cookie mode sends none)."""
    raw = await request.body()
    if not raw.strip():
        return kind()
    decoded: RefreshIn = request.decoder.decode(raw, type=kind)
    return decoded


def _csrf_sent(request: AppRequest, identity: IdentityParts) -> str:
    """Cookie mode on the refresh cookie: the Origin is ours, and the CSRF header equals the CSRF cookie
    (the service then checks that the token belongs to the refresh token's session)."""
    ctx = request.context
    if ctx.origin is not None and not identity.csrf.origin_allowed(ctx.origin, ctx.host):
        raise CsrfFailed("This request comes from another site.")
    sent = request.headers.get(identity.config.csrf_header)
    stored = request.cookies.get(identity.config.cookie_csrf)
    if not sent or not stored:
        raise CsrfFailed(identity.csrf.missing())
    if not hmac.compare_digest(sent.encode(), stored.encode()):
        raise CsrfFailed("The CSRF token does not match this session.")
    return sent


@post("/auth/register", status_code=201)
async def register(request: AppRequest, data: JSONBody[RegisterIn], identity: Identity) -> Response[SessionOut]:
    issued = await identity.signin.register(
        email=data.email,
        password=data.password,
        login=data.login,
        display_name=data.display_name,
        invite=data.invite,
        meta=_meta(request),
    )
    return _session_response(identity, issued, data.mode, 201)


@post("/auth/login", status_code=200)
async def login(request: AppRequest, data: JSONBody[LoginIn], identity: Identity) -> Response[SessionOut]:
    issued = await identity.signin.login(email=data.email, password=data.password, meta=_meta(request))
    return _session_response(identity, issued, data.mode)


@post("/auth/refresh", status_code=200)
async def refresh(request: AppRequest, identity: Identity) -> Response[SessionOut]:
    data = await _optional_body(request, RefreshIn)
    if data.refresh_token:
        return _session_response(identity, await identity.sessions.refresh(data.refresh_token), "token")
    cookie = request.cookies.get(identity.config.cookie_refresh)
    if not cookie:
        raise RefreshRejected()
    issued = await identity.sessions.refresh(cookie, csrf=_csrf_sent(request, identity))
    return _session_response(identity, issued, "cookie")


@post("/auth/logout", status_code=204)
async def logout(request: AppRequest, identity: Identity) -> Response[None]:
    """End the session of the refresh token (body or cookie) or of the access token; always clears cookies."""
    data = await _optional_body(request, RefreshIn)
    session_id: str | None = None
    cookie = request.cookies.get(identity.config.cookie_refresh)
    if data.refresh_token:
        session_id = await identity.sessions.session_of_refresh(data.refresh_token)
    elif cookie:
        sent = _csrf_sent(request, identity)
        session_id = await identity.sessions.session_of_refresh(cookie)
        if session_id is not None and not identity.csrf.valid(session_id, sent):
            raise CsrfFailed("The CSRF token does not match this session.")
    else:
        principal = request.principal
        found = principal.attrs.get("session_id") if principal.kind == "user" else None
        session_id = found if isinstance(found, str) else None
    if session_id is not None:
        await identity.sessions.revoke_session(session_id, reason="logout")
    return Response(None, status_code=204, cookies=_cleared_cookies(identity))


@post("/auth/password", status_code=204)
async def change_password(request: AppRequest, data: JSONBody[PasswordChange], identity: Identity) -> Response[None]:
    principal = request.principal
    if principal.kind != "user":
        raise InvalidToken("Change a password from a signed-in session, not with an API key.")
    await identity.accounts.change_password(principal.id, data.current_password, data.new_password)
    return Response(None, status_code=204, cookies=_cleared_cookies(identity))


@get("/auth/status")
async def status(request: AppRequest, identity: Identity) -> Response[StatusOut]:
    principal = request.principal_or_none
    if principal is None:
        return Response(StatusOut(authenticated=False))
    user = await identity.facade.profile(principal)
    csrf: str | None = None
    cookies: list[Cookie] = []
    session_id = principal.attrs.get("session_id")
    if principal.attrs.get("auth") == "cookie" and isinstance(session_id, str):
        # The current CSRF cookie if it is this session's (other tabs hold it); else a new one.
        csrf = request.cookies.get(identity.config.cookie_csrf)
        if not csrf or not identity.csrf.valid(session_id, csrf):
            csrf = identity.csrf.token(session_id)
            cookies.append(
                _cookie(
                    identity,
                    identity.config.cookie_csrf,
                    csrf,
                    max_age=identity.config.refresh_token_seconds,
                    httponly=False,
                )
            )
    return Response(
        StatusOut(authenticated=True, kind=principal.kind, user=user, scopes=sorted(principal.scopes), csrf_token=csrf),
        cookies=cookies,
    )


def _redirect_uri(request: AppRequest, identity: IdentityParts, provider: str) -> str:
    base = identity.config.public_url or str(request.base_url)
    return base.rstrip("/") + f"/auth/callback/{provider}"


@get("/auth/login/{provider:str}")
async def oauth_login(
    request: AppRequest,
    provider: FromPath[str],
    identity: Identity,
    next_path: Annotated[str | None, QueryParameter(name="next")] = None,
    invite: FromQuery[str | None] = None,
) -> Redirect:
    principal = request.principal_or_none
    link = principal.id if principal is not None and principal.kind == "user" else None
    url, state = await identity.signin.oauth_begin(
        provider,
        redirect_uri=_redirect_uri(request, identity, provider),
        next_path=next_path,
        invite=invite,
        link_user_id=link,
    )
    # The state is bound to this browser: a callback from another browser (login CSRF) is refused.
    bound = _cookie(
        identity, STATE_COOKIE, state, max_age=identity.config.oauth_state_seconds, path=f"/auth/callback/{provider}"
    )
    return Redirect(url, status_code=302, cookies=[bound])


@get("/auth/callback/{provider:str}")
async def oauth_callback(
    request: AppRequest,
    provider: FromPath[str],
    identity: Identity,
    code: FromQuery[str | None] = None,
    returned_state: Annotated[str | None, QueryParameter(name="state")] = None,
    error: FromQuery[str | None] = None,
) -> Redirect:
    issued, target = await identity.signin.oauth_complete(
        provider,
        state=returned_state,
        bound_state=request.cookies.get(STATE_COOKIE),
        code=code,
        error=error,
        meta=_meta(request),
    )
    cookies = [
        *_session_cookies(identity, issued),
        _cookie(identity, STATE_COOKIE, "", max_age=0, path=f"/auth/callback/{provider}"),
    ]
    return Redirect(target, status_code=302, cookies=cookies)


@post("/api/keys", status_code=201)
async def create_key(request: AppRequest, data: JSONBody[ApiKeyIn], identity: Identity) -> ApiKeyCreated:
    principal = require_scope_of(request.principal, "keys")
    view, token = await identity.api_keys.create(
        principal, name=data.name, scopes=data.scopes, app=data.app, expires_in_days=data.expires_in_days
    )
    return ApiKeyCreated(**msgspec.structs.asdict(view), key=token)


@get("/api/keys")
async def list_keys(request: AppRequest, identity: Identity, limit: Limit = 100, offset: Offset = 0) -> list[ApiKeyOut]:
    principal = require_scope_of(request.principal, "keys")
    return Page(limit, offset).slice(await identity.api_keys.of_user(require_user(principal)))


@delete("/api/keys/{key_id:str}", status_code=204)
async def revoke_key(request: AppRequest, key_id: FromPath[str], identity: Identity) -> None:
    principal = require_scope_of(request.principal, "keys")
    await identity.api_keys.revoke(key_id, actor=principal)


@get("/api/users")
async def list_users(
    request: AppRequest,
    identity: Identity,
    limit: Limit = 100,
    offset: Offset = 0,
) -> list[AdminUserView]:
    require_role_of(request.principal, "owner", "admin")
    return await identity.accounts.list_users(limit=limit, offset=offset)


@patch("/api/users/{user_id:str}")
async def update_user(
    request: AppRequest, user_id: FromPath[str], data: JSONBody[UserPatch], identity: Identity
) -> AdminUserView:
    actor = require_role_of(request.principal, "owner", "admin")
    return await identity.accounts.update_user(actor, user_id, role=data.role, plan=data.plan, disabled=data.disabled)


@post("/api/invites", status_code=201)
async def create_invite(request: AppRequest, data: JSONBody[InviteIn], identity: Identity) -> InviteOut:
    actor = require_role_of(request.principal, "owner", "admin")
    if data.role == "admin":
        require_role_of(actor, "owner")
    return await identity.accounts.create_invite(
        require_user(actor), email=data.email, role=data.role, days=data.expires_in_days
    )


route_handlers = [
    register,
    login,
    refresh,
    logout,
    change_password,
    status,
    oauth_login,
    oauth_callback,
    create_key,
    list_keys,
    revoke_key,
    list_users,
    update_user,
    create_invite,
]
