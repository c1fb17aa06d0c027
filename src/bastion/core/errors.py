"""Errors that reach a client, and how they are rendered (RFC 9457 problem+json).

Our exception hierarchy::

    AppError                      500 INTERNAL_ERROR
    ├── BadRequest                400 BAD_REQUEST
    │   ├── MalformedBody         400 MALFORMED_BODY
    │   └── InvalidHost           400 INVALID_HOST
    ├── Unauthorized              401 UNAUTHORIZED
    │   └── WebhookSignatureInvalid 401 WEBHOOK_SIGNATURE_INVALID (a signed webhook whose signature is missing or wrong)
    ├── Forbidden                 403 FORBIDDEN
    ├── NotFound                  404 NOT_FOUND
    ├── MethodNotAllowed          405 METHOD_NOT_ALLOWED
    ├── RequestTimeout            408 REQUEST_TIMEOUT (the body did not arrive in time; the connection closes)
    │   └── ResponseWriteTimeout  408 RESPONSE_WRITE_TIMEOUT (the client stopped reading; logged, then closed)
    ├── Conflict                  409 CONFLICT
    │   └── IdempotencyInProgress 409 IDEMPOTENCY_IN_PROGRESS
    ├── PayloadTooLarge           413 PAYLOAD_TOO_LARGE
    ├── UriTooLong                414 URI_TOO_LONG
    ├── UnsupportedMediaType      415 UNSUPPORTED_MEDIA_TYPE
    ├── ValidationFailed          422 VALIDATION_FAILED
    │   └── IdempotencyKeyReused  422 IDEMPOTENCY_KEY_REUSED
    ├── RateLimited               429 RATE_LIMITED
    │   └── Banned                429 CLIENT_BANNED
    ├── HeadersTooLarge           431 HEADERS_TOO_LARGE
    ├── ClientClosedRequest       499 CLIENT_CLOSED_REQUEST (the client left; logged, nobody reads it)
    ├── BadGateway                502 BAD_GATEWAY
    ├── ServiceUnavailable        503 SERVICE_UNAVAILABLE
    │   ├── DependencyUnavailable 503 DEPENDENCY_UNAVAILABLE
    │   │   └── DatabaseUnavailable 503 DATABASE_UNAVAILABLE
    │   ├── CircuitOpen           503 CIRCUIT_OPEN
    │   ├── BulkheadFull          503 OVERLOADED
    │   └── ShuttingDown          503 SHUTTING_DOWN
    └── GatewayTimeout            504 GATEWAY_TIMEOUT

Modules subclass these (or ``AppError``) with their own stable ``code``. A subclass fixes ``status``,
``code`` and ``title``; an instance carries ``detail`` (safe to show the client, also for 5xx) and
optional ``extra`` members and response ``headers``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import msgspec


class AppError(Exception):
    status: ClassVar[int] = 500
    code: ClassVar[str] = "INTERNAL_ERROR"
    title: ClassVar[str] = "Internal error"

    def __init__(
        self,
        detail: str | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.detail = detail or self.title
        self.headers = dict(headers or {})
        self.extra = dict(extra or {})
        if retry_after is not None:
            self.headers["Retry-After"] = str(max(1, math.ceil(retry_after)))
        super().__init__(self.detail)


class BadRequest(AppError):
    status, code, title = 400, "BAD_REQUEST", "Bad request"


class MalformedBody(BadRequest):
    code, title = "MALFORMED_BODY", "Request body is not valid"


class InvalidHost(BadRequest):
    code, title = "INVALID_HOST", "Host not allowed"


class Unauthorized(AppError):
    status, code, title = 401, "UNAUTHORIZED", "Authentication required"


class WebhookSignatureInvalid(Unauthorized):
    """A vendor's webhook (WhatsApp, GoHighLevel, …) whose signature is missing or does not verify: nothing of
    it is read or stored. One code for every module, so a client (or an alert) reads it the same way."""

    code, title = "WEBHOOK_SIGNATURE_INVALID", "Webhook signature missing or invalid"


class Forbidden(AppError):
    status, code, title = 403, "FORBIDDEN", "Forbidden"


class NotFound(AppError):
    status, code, title = 404, "NOT_FOUND", "Not found"


class MethodNotAllowed(AppError):
    status, code, title = 405, "METHOD_NOT_ALLOWED", "Method not allowed"


class Conflict(AppError):
    status, code, title = 409, "CONFLICT", "Conflict"


class IdempotencyInProgress(Conflict):
    code, title = "IDEMPOTENCY_IN_PROGRESS", "A request with this Idempotency-Key is still in progress"


class RequestTimeout(AppError):
    status, code, title = 408, "REQUEST_TIMEOUT", "Request body not received in time"


class ResponseWriteTimeout(RequestTimeout):
    code, title = "RESPONSE_WRITE_TIMEOUT", "Response not taken in time"


class PayloadTooLarge(AppError):
    status, code, title = 413, "PAYLOAD_TOO_LARGE", "Request body too large"


class UriTooLong(AppError):
    status, code, title = 414, "URI_TOO_LONG", "URI too long"


class UnsupportedMediaType(AppError):
    status, code, title = 415, "UNSUPPORTED_MEDIA_TYPE", "Unsupported media type"


class ValidationFailed(AppError):
    status, code, title = 422, "VALIDATION_FAILED", "Validation failed"


class IdempotencyKeyReused(ValidationFailed):
    code, title = "IDEMPOTENCY_KEY_REUSED", "Idempotency-Key was used with a different request"


class RateLimited(AppError):
    status, code, title = 429, "RATE_LIMITED", "Too many requests"


class Banned(RateLimited):
    code, title = "CLIENT_BANNED", "Client temporarily banned for abuse"


class HeadersTooLarge(AppError):
    status, code, title = 431, "HEADERS_TOO_LARGE", "Request header fields too large"


class ClientClosedRequest(AppError):
    """The client disconnected before the answer was ready, and the work for it was cancelled (nginx's 499)."""

    status, code, title = 499, "CLIENT_CLOSED_REQUEST", "Client closed the request"


class BadGateway(AppError):
    status, code, title = 502, "BAD_GATEWAY", "Bad gateway"


class ServiceUnavailable(AppError):
    status, code, title = 503, "SERVICE_UNAVAILABLE", "Service unavailable"


class DependencyUnavailable(ServiceUnavailable):
    code, title = "DEPENDENCY_UNAVAILABLE", "A required dependency is unavailable"


class DatabaseUnavailable(DependencyUnavailable):
    code, title = "DATABASE_UNAVAILABLE", "The database is unavailable"


class CircuitOpen(ServiceUnavailable):
    code, title = "CIRCUIT_OPEN", "Upstream temporarily disabled after repeated failures"


class BulkheadFull(ServiceUnavailable):
    code, title = "OVERLOADED", "Too many concurrent requests to this upstream"


class ShuttingDown(ServiceUnavailable):
    code, title = "SHUTTING_DOWN", "Server is shutting down"


class GatewayTimeout(AppError):
    status, code, title = 504, "GATEWAY_TIMEOUT", "Upstream timed out"


PROBLEM_CONTENT_TYPE = b"application/problem+json"
_encoder = msgspec.json.Encoder()
_GENERIC_5XX = "The server could not complete the request. Quote the request_id when reporting it."


def problem_type(code: str) -> str:
    """The problem ``type`` URI: a relative reference to the page documenting ``code``."""
    return "/problems/" + code.lower().replace("_", "-")


def problem_body(
    status: int,
    code: str,
    title: str,
    detail: str,
    request_id: str | None,
    extra: Mapping[str, Any] | None = None,
) -> bytes:
    body: dict[str, Any] = {
        "type": problem_type(code),
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
        "request_id": request_id,
    }
    if extra:
        for key, value in extra.items():
            body.setdefault(key, value)
    return _encoder.encode(body)


def render(error: AppError, request_id: str | None) -> bytes:
    """The body for ``error``.

    ``detail`` of an ``AppError`` is written to be shown, so it is kept even for 5xx; only errors that
    are not ``AppError`` (see :func:`render_unexpected`) have their text withheld.
    """
    return problem_body(error.status, error.code, error.title, error.detail, request_id, error.extra)


def render_unexpected(exc: BaseException, request_id: str | None, *, production: bool) -> bytes:
    """A 500 body for an exception we did not anticipate; its text is shown in development only."""
    detail = _GENERIC_5XX if production else f"{type(exc).__name__}: {exc}"
    return problem_body(500, AppError.code, AppError.title, detail, request_id)


def headers_list(content_length: int, extra: Mapping[str, str]) -> list[tuple[bytes, bytes]]:
    headers = [
        (b"content-type", PROBLEM_CONTENT_TYPE),
        (b"content-length", str(content_length).encode()),
        (b"cache-control", b"no-store"),
    ]
    headers.extend((k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in extra.items())
    return headers


def validation_errors(items: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The ``errors`` member of a VALIDATION_FAILED problem: ``[{"field": ..., "message": ...}]``."""
    return {
        "errors": [
            {"field": str(i.get("key") or i.get("field") or ""), "message": str(i.get("message", ""))} for i in items
        ]
    }
