"""Litestar's exception handler: every error raised in routing or a route handler becomes problem+json.

* ``AppError`` (and its module subclasses) → its own status, code and detail;
* Litestar's errors → the matching code (malformed JSON → 400 ``MALFORMED_BODY``, a body that fails
  its schema → 422 ``VALIDATION_FAILED`` with ``errors: [{field, message}]``, unknown route → 404,
  wrong method → 405 with ``Allow``);
* a database that cannot be reached → 503 ``DATABASE_UNAVAILABLE`` with Retry-After;
* anything else → 500, logged once with the traceback; in production the body says nothing of it.
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from typing import Any, cast

from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.exceptions.base_exceptions import SerializationException

from bastion.core import db, errors
from bastion.core.edge.asgi import CONTEXT_KEY, RequestContext
from bastion.core.logging import get_logger
from bastion.core.observability.hooks import report_unexpected

log = get_logger("bastion.errors")

_BY_STATUS: dict[int, type[errors.AppError]] = {
    400: errors.BadRequest,
    401: errors.Unauthorized,
    403: errors.Forbidden,
    404: errors.NotFound,
    405: errors.MethodNotAllowed,
    409: errors.Conflict,
    413: errors.PayloadTooLarge,
    415: errors.UnsupportedMediaType,
    422: errors.ValidationFailed,
    429: errors.RateLimited,
    503: errors.ServiceUnavailable,
}

Translator = Callable[[BaseException], errors.AppError | None]


def translate(exc: BaseException, translators: tuple[Translator, ...] = (db.unavailable,)) -> errors.AppError | None:
    """The ``AppError`` a client should see for ``exc``, or None if it is unexpected (a 500)."""
    if isinstance(exc, errors.AppError):
        return exc
    if isinstance(exc, ValidationException):
        extra = exc.extra if isinstance(exc.extra, list) else []
        return errors.ValidationFailed(
            "The request does not match the expected schema.", extra=errors.validation_errors(extra)
        )
    if isinstance(exc, HTTPException):
        if isinstance(exc.__cause__, SerializationException) or "malformed" in str(exc.detail).lower():
            return errors.MalformedBody("The body is not valid JSON.")
        kind = _BY_STATUS.get(exc.status_code)
        if kind is None:
            kind = errors.AppError if exc.status_code >= 500 else errors.BadRequest
        detail = exc.detail if exc.status_code < 500 else None
        if exc.status_code == 404:
            detail = "Nothing is served at this path."
        return kind(detail, headers=exc.headers)
    for translator in translators:
        found = translator(exc)
        if found is not None:
            return found
    return None


def exception_handler(production: bool) -> Callable[[Request[Any, Any, Any], Exception], Response[bytes]]:
    def handle(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
        ctx = cast("RequestContext | None", request.scope.get(CONTEXT_KEY))
        request_id = ctx.request_id if ctx is not None else None
        error = translate(exc)
        if error is None:
            log.error(
                "unhandled exception", route=request.scope.get("path_template"), method=request.method, exc_info=exc
            )
            report_unexpected(exc, cast("MutableMapping[str, Any]", request.scope))
            body = errors.render_unexpected(exc, request_id, production=production)
            return Response(
                body,
                status_code=500,
                media_type=errors.PROBLEM_CONTENT_TYPE.decode(),
                headers={"cache-control": "no-store"},
            )
        if error.status >= 500:
            log.warning(
                "request failed", code=error.code, detail=error.detail, cause=type(exc.__cause__ or exc).__name__
            )
        return Response(
            errors.render(error, request_id),
            status_code=error.status,
            media_type=errors.PROBLEM_CONTENT_TYPE.decode(),
            headers=error.headers,
        )

    return handle
