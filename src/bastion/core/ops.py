"""Operational routes: health probes, Prometheus metrics, security.txt, the problem-type pages, and the admin
view of the background jobs (``core/jobs/admin.py``) and ``POST /cron/{job}`` (``core/jobs/cron.py``)."""

from __future__ import annotations

import datetime as dt
import hmac
from typing import Any, cast

from litestar import MediaType, Request, Response, Router, get
from litestar.params import FromPath

from bastion.core import errors, metrics
from bastion.core.edge.asgi import CONTEXT_KEY, RequestContext, RoutePolicy
from bastion.core.edge.routes import RouteGroup
from bastion.core.jobs.admin import JOBS_ROUTE_GROUPS, jobs_router
from bastion.core.jobs.cron import CRON_ROUTE_GROUPS, cron_router
from bastion.core.openapi import api_reference
from bastion.core.platform import Platform

HEALTH_JSON = "application/health+json"
_NO_STORE = {"cache-control": "no-store"}


def _platform(request: Request[Any, Any, Any]) -> Platform:
    platform: Platform = request.app.state.platform
    return platform


def _bearer_matches(request: Request[Any, Any, Any], expected: str) -> bool:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), expected.encode())


@get("/health", media_type=MediaType.JSON, include_in_schema=False, sync_to_thread=False)
def health() -> Response[bytes]:
    """Cheap liveness: the process serves requests. No dependency is touched."""
    return Response(b'{"status":"pass"}', media_type=HEALTH_JSON, headers=_NO_STORE)


@get("/health/live", media_type=MediaType.JSON, include_in_schema=False, sync_to_thread=False)
def live() -> Response[bytes]:
    return Response(b'{"status":"pass"}', media_type=HEALTH_JSON, headers=_NO_STORE)


@get("/health/ready", include_in_schema=False)
async def ready(request: Request[Any, Any, Any]) -> Response[Any]:
    """Ready to take traffic: every required dependency answers and the worker is not draining."""
    platform = _platform(request)
    ok, results = await platform.health.ready()
    body: dict[str, Any] = {"status": "pass" if ok else "fail", "checks": {r.name: r.status for r in results}}
    if not platform.lifecycle.ready:
        body["output"] = platform.lifecycle.phase.value
    headers = dict(_NO_STORE)
    if not ok:
        headers["retry-after"] = "5"
    return Response(body, status_code=200 if ok else 503, media_type=HEALTH_JSON, headers=headers)


@get("/health/detailed", include_in_schema=False)
async def detailed(request: Request[Any, Any, Any]) -> Response[Any]:
    """Every dependency with status and latency, version, uptime and memory (health+json).

    In production only for an owner/admin principal or a bearer ``BASTION_HEALTH_TOKEN``."""
    platform = _platform(request)
    settings = platform.settings
    if settings.is_production:
        ctx = cast("RequestContext | None", request.scope.get(CONTEXT_KEY))
        admin = ctx is not None and ctx.principal is not None and ctx.principal.has_role("owner", "admin")
        token = settings.health_token.get_secret_value() if settings.health_token else None
        if not admin and not (token and _bearer_matches(request, token)):
            raise errors.Unauthorized(
                "The detailed health report needs an admin or the health token.", headers={"WWW-Authenticate": "Bearer"}
            )
    status, body = await platform.health.detailed()
    return Response(body, status_code=503 if status == "fail" else 200, media_type=HEALTH_JSON, headers=_NO_STORE)


@get("/metrics", include_in_schema=False)
async def metrics_endpoint(request: Request[Any, Any, Any]) -> Response[bytes]:
    """Prometheus text exposition, merged across workers; behind ``BASTION_METRICS_TOKEN`` when set."""
    settings = _platform(request).settings
    if settings.metrics_token is not None and not _bearer_matches(request, settings.metrics_token.get_secret_value()):
        raise errors.Unauthorized("Metrics need the metrics token.", headers={"WWW-Authenticate": "Bearer"})
    body, content_type = metrics.exposition(
        openmetrics="application/openmetrics-text" in request.headers.get("accept", "")
    )
    return Response(body, media_type=content_type, headers=_NO_STORE)


@get("/.well-known/security.txt", media_type=MediaType.TEXT, include_in_schema=False, sync_to_thread=False)
def security_txt(request: Request[Any, Any, Any]) -> Response[str]:
    """RFC 9116: Contact from settings, Expires computed now (a year less a day ahead)."""
    settings = _platform(request).settings
    if not settings.security_contact:
        raise errors.NotFound("No security contact is configured.")
    expires = (dt.datetime.now(dt.UTC) + dt.timedelta(days=364)).replace(microsecond=0)
    lines = [
        f"Contact: {settings.security_contact}",
        f"Expires: {expires.isoformat().replace('+00:00', 'Z')}",
        "Preferred-Languages: en",
    ]
    return Response("\n".join(lines) + "\n", media_type=MediaType.TEXT, headers={"cache-control": "max-age=86400"})


@get("/problems/{slug:str}", include_in_schema=False, sync_to_thread=False)
def problem_page(slug: FromPath[str]) -> Response[str]:
    """What a problem ``type`` URI names: its title and status, in plain text."""
    for kind in _error_types(errors.AppError):
        if errors.problem_type(kind.code) == f"/problems/{slug}":
            text = f"{kind.code}\n{kind.status} {kind.title}\n\n{(kind.__doc__ or '').strip()}\n"
            return Response(text, media_type=MediaType.TEXT, headers={"cache-control": "max-age=3600"})
    raise errors.NotFound("No such problem type.")


def _error_types(root: type[errors.AppError]) -> list[type[errors.AppError]]:
    found = [root]
    for sub in root.__subclasses__():
        found.extend(_error_types(sub))
    return found


ops_router = Router(
    path="/",
    route_handlers=[
        health,
        live,
        ready,
        detailed,
        metrics_endpoint,
        security_txt,
        problem_page,
        api_reference,
        jobs_router,
        cron_router,
    ],
)

OPS_ROUTE_GROUPS = [
    RouteGroup("/health", RoutePolicy(tier=None)),
    RouteGroup("/metrics", RoutePolicy(tier=None)),
    # documents anybody may read: counted against the general tier, and they take no body
    RouteGroup("/.well-known/security.txt", RoutePolicy(tier="general"), exact=True),
    RouteGroup("/problems/{slug}", RoutePolicy(tier="general"), exact=True),
    RouteGroup("/schema", RoutePolicy(tier="general")),
    RouteGroup("/docs", RoutePolicy(tier="general"), exact=True),
    *JOBS_ROUTE_GROUPS,
    *CRON_ROUTE_GROUPS,
]
