"""The calls the request path makes into the opt-in observability, whatever is configured.

Unconfigured, each is one ``if`` on a module global: nothing of Sentry or OpenTelemetry is imported. ``create_app``
installs the error reporter when ``BASTION_SENTRY_DSN`` is set (``sentry.py``) and the tracing when
``BASTION_OTEL__ENDPOINT`` is (``tracing.py``). Both are per process, like the Sentry client; the last app started
wins (one app per worker in production).
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bastion.core.observability.tracing import Tracing

ErrorReporter = Callable[[BaseException, MutableMapping[str, Any]], None]

_error_reporter: ErrorReporter | None = None
tracing: Tracing | None = None
"""The tracing of the app being served (``tracing.py``), for code that has no platform at hand: the upstream path,
the outbound HTTP clients and the queue propagation API. None unless ``BASTION_OTEL__ENDPOINT`` is set."""


def install_tracing(found: Tracing | None) -> None:
    global tracing
    tracing = found


def report_unexpected(exc: BaseException, scope: MutableMapping[str, Any]) -> None:
    """An unhandled error of the request ``scope`` (an ASGI scope): to the error tracker, when one is installed.

    Never raises: a broken tracker must not turn a 500 into a dropped connection."""
    reporter = _error_reporter
    if reporter is None:
        return
    try:
        reporter(exc, scope)
    except Exception:  # the tracker is best-effort by contract; its failure is logged, never raised
        from bastion.core.logging import get_logger

        get_logger("bastion.observability").warning("error tracker failed", exc_info=True)


def install_error_reporter(reporter: ErrorReporter | None) -> None:
    global _error_reporter
    _error_reporter = reporter
