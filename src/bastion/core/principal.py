"""Who is calling: the type the core knows, and the hook through which a module (identity) resolves it.

The core never authenticates anybody itself; ``create_app`` installs the identity module's resolver,
and the admission stage calls it once per request (to key rate limits on the principal) and stores
the result on the request context. A resolver that rejects a credential (expired, revoked, a cookie
request without its CSRF token) answers ``None`` and may :func:`refuse` the request: the guards below
then raise that error instead of the generic 401. Route handlers read the principal from the request
(:class:`bastion.core.dependencies.AppRequest`) and check it with the helpers at the bottom::

    @get("/api/things")
    async def things(request: AppRequest) -> list[Thing]:
        principal = require_scope_of(request.principal, "things:read")
        return await things_of(require_user(principal))        # 403 for a service principal
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

from bastion.core.edge.asgi import CONTEXT_KEY
from bastion.core.errors import AppError, Forbidden, Unauthorized

if TYPE_CHECKING:
    from bastion.core.edge.asgi import RequestContext, Scope

PrincipalKind = Literal["user", "api_key", "service"]
REFUSAL_KEY = "bastion.refusal"


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller. Anonymous callers have no ``Principal``; they are their client address.

    ``user_id`` is the user this principal acts for: a user is itself (filled in when not given), an API key
    its owning user, a service nobody. Whatever a user owns is keyed on it, whichever credential is used.
    """

    kind: PrincipalKind
    id: str
    roles: frozenset[str] = frozenset()
    scopes: frozenset[str] = frozenset()
    attrs: Mapping[str, Any] = field(default_factory=dict)
    user_id: str | None = None

    def __post_init__(self) -> None:
        if self.kind == "user":
            if self.user_id is None:
                object.__setattr__(self, "user_id", self.id)  # frozen: the one way to fill in a default
            elif self.user_id != self.id:
                raise ValueError(f"a user principal acts for itself, not for {self.user_id!r}")
        elif self.kind == "service" and self.user_id is not None:
            raise ValueError("a service principal acts for no user")

    @property
    def rate_key(self) -> str:
        return f"{self.kind}:{self.id}"

    def has_role(self, *roles: str) -> bool:
        return bool(self.roles.intersection(roles))

    def has_scope(self, scope: str) -> bool:
        return "*" in self.scopes or scope in self.scopes


class PrincipalResolver(Protocol):
    """Returns the principal a request authenticates as, ``None`` for an anonymous one.

    It must be cheap (an in-process cache in front of any store) and must not raise for a bad
    credential: an invalid token is treated as anonymous here and rejected by the route's guard.
    """

    async def __call__(self, scope: Scope, ctx: RequestContext) -> Principal | None: ...


def current_principal(scope: Scope) -> Principal | None:
    """The principal the admission stage resolved for this request (None: anonymous)."""
    ctx: RequestContext | None = scope.get(CONTEXT_KEY)
    return ctx.principal if ctx is not None else None


def refuse(scope: Scope, error: AppError) -> None:
    """Record why the credential sent with this request was not accepted (resolvers must not raise).

    The request goes on as anonymous, so routes open to anybody still serve it; a route that needs a
    principal answers with ``error`` (a fresh instance per request) rather than the generic 401.
    """
    scope[REFUSAL_KEY] = error


def require_principal(scope: Scope) -> Principal:
    """The caller; else the error a resolver recorded with :func:`refuse`, or 401 ``UNAUTHORIZED``."""
    principal = current_principal(scope)
    if principal is None:
        refusal = scope.get(REFUSAL_KEY)
        if isinstance(refusal, AppError):
            raise refusal
        raise Unauthorized("Sign in or send an API key.", headers={"WWW-Authenticate": 'Bearer realm="bastion"'})
    return principal


def require_role_of(principal: Principal, *roles: str) -> Principal:
    """``principal`` if it has one of ``roles``, else 403 ``FORBIDDEN``."""
    if not principal.has_role(*roles):
        raise Forbidden(f"This needs the {' or '.join(roles)} role.")
    return principal


def require_scope_of(principal: Principal, needed: str) -> Principal:
    """``principal`` if its credential carries ``needed``, else 403 ``FORBIDDEN``."""
    if not principal.has_scope(needed):
        raise Forbidden(f"This credential lacks the {needed!r} scope.")
    return principal


def require_user(principal: Principal) -> str:
    """The user ``principal`` acts for, else 403 ``FORBIDDEN`` (a service principal acts for nobody)."""
    if principal.user_id is None:
        raise Forbidden("This credential does not act for a user.")
    return principal.user_id
