"""Opt-in error tracking with the official ``sentry-sdk``: imported only when ``BASTION_SENTRY_DSN`` is set.

    BASTION_SENTRY_DSN=https://<key>@o0.ingest.sentry.io/<project>
    BASTION_SENTRY__SAMPLE_RATE=1.0   BASTION_SENTRY__QUEUE_SIZE=100   BASTION_SENTRY__TIMEOUT_SECONDS=5

What is sent: an unhandled error of a request (the 500s the edge and Litestar's handler render), with the tags
``request_id``, ``route`` (the template), ``method``, ``principal_kind``, ``principal_id`` and, when tracing
sampled the request, ``trace_id``; the exception's type, message and stack (file, function, line and the source
lines around it), the release and the environment.

What is never sent: request bodies, headers and cookies (no web integration is enabled, and
``send_default_pii`` is left off), local variables (``include_local_variables`` off), breadcrumbs and logs, sessions,
metrics, traces. Whatever remains goes through :func:`before_send`: the log redaction (keys naming credentials, prompts,
message texts or phone numbers; bearer tokens, API keys, JWTs, URL passwords, ``password=…`` and phone numbers
inside any text).

Sending never touches a request: the SDK's transport queues an envelope for its own thread (at most
``queue_size`` waiting; beyond that they are dropped and counted by the SDK), and that thread's HTTP call times out
after ``timeout_seconds``. At drain the queue gets ``shutdown_timeout`` seconds to empty.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any, cast

import sentry_sdk
from litestar.exceptions import LitestarException
from sentry_sdk.transport import HttpTransport
from sentry_sdk.types import Event, Hint

from bastion.core.edge.asgi import CONTEXT_KEY, RequestContext
from bastion.core.logging import REDACTED, key_is_sensitive, redact_text
from bastion.core.observability import hooks
from bastion.core.observability.settings import SentrySettings

# The envelope's own fields: ours or the SDK's, never user data, and some of them look like numbers.
_STRUCTURAL = frozenset({"event_id", "timestamp", "start_timestamp", "sdk", "platform", "level", "modules", "type"})


def before_send(event: Event, _hint: Hint) -> Event:
    """The last look at an event before it is queued: redacted as the logs are (``core/logging.py``)."""
    fields = cast("dict[str, Any]", event)
    for key in list(fields):
        if key not in _STRUCTURAL:
            fields[key] = _scrub(fields[key], key)
    return event


def _scrub(value: Any, key: str = "", depth: int = 0) -> Any:
    if key and key_is_sensitive(key):
        return REDACTED
    if isinstance(value, str):
        return redact_text(value)
    if depth > 12:
        return value
    if isinstance(value, dict):
        return {k: _scrub(v, k if isinstance(k, str) else "", depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(v, "", depth + 1) for v in value]
    return value


class _BoundedTransport(HttpTransport):
    """The SDK's own HTTP transport (a worker thread and a bounded queue) with a shorter HTTP timeout: its
    default of 30 s would let a stalled ingest hold the queue for that long."""

    TIMEOUT = 5


def _capture(exc: BaseException, scope: MutableMapping[str, Any]) -> None:
    ctx: RequestContext | None = scope.get(CONTEXT_KEY)
    with sentry_sdk.new_scope() as sentry_scope:
        sentry_scope.set_tag("route", scope.get("path_template") or "<unmatched>")
        sentry_scope.set_tag("method", scope.get("method", ""))
        if ctx is not None:
            sentry_scope.set_tag("request_id", ctx.request_id)
            if ctx.principal is not None:
                sentry_scope.set_tag("principal_kind", ctx.principal.kind)
                sentry_scope.set_tag("principal_id", ctx.principal.id)
        trace_id = _current_trace_id()
        if trace_id is not None:
            sentry_scope.set_tag("trace_id", trace_id)  # the error's trace, when tracing is on and sampled it
        sentry_scope.capture_exception(_unwrapped(exc))


def _current_trace_id() -> str | None:
    if hooks.tracing is None:
        return None
    from opentelemetry import trace

    found = trace.get_current_span().get_span_context()
    return trace.format_trace_id(found.trace_id) if found.is_valid and found.trace_flags.sampled else None


def _unwrapped(exc: BaseException) -> BaseException:
    """The error itself, out of the wrappers a stream's failure comes in: a task group's one-member exception
    group, and Litestar's "Exception caught after response started" (which has the error as its cause)."""
    for _ in range(10):
        if isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
            exc = exc.exceptions[0]
        elif type(exc) is LitestarException and exc.__cause__ is not None:
            exc = exc.__cause__
        else:
            break
    return exc


def setup(dsn: str, settings: SentrySettings, *, environment: str, release: str) -> None:
    """Start the Sentry client and route unhandled request errors to it (once per process)."""
    _BoundedTransport.TIMEOUT = int(max(1, settings.timeout_seconds))
    sentry_sdk.init(
        dsn=dsn,
        environment=environment,
        release=f"bastion@{release}",
        sample_rate=settings.sample_rate,
        transport=_BoundedTransport,
        transport_queue_size=settings.queue_size,
        shutdown_timeout=settings.shutdown_timeout,
        before_send=before_send,
        # Nothing but what we capture ourselves: no patched libraries, no logging hook, no request data.
        default_integrations=False,
        auto_enabling_integrations=False,
        integrations=[],
        include_local_variables=False,
        max_request_body_size="never",
        max_breadcrumbs=0,
        auto_session_tracking=False,
        send_client_reports=False,
        enable_metrics=False,
        enable_logs=False,
        traces_sample_rate=None,
    )
    hooks.install_error_reporter(_capture)


async def close() -> None:
    """At drain: give queued events ``shutdown_timeout`` to leave, in a thread, then stop reporting."""
    import asyncio

    hooks.install_error_reporter(None)
    client = sentry_sdk.get_client()
    await asyncio.to_thread(client.close)
