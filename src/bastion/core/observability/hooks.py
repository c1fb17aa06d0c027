"""The calls the request path makes into the opt-in observability, whatever is configured.

Unconfigured, each is one ``if`` on a module global: nothing of Sentry or OpenTelemetry is imported. ``create_app``
installs the error reporter when ``BASTION_SENTRY_DSN`` is set (``sentry.py``). The reporter is per process,
like the Sentry client it feeds.
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from typing import Any

ErrorReporter = Callable[[BaseException, MutableMapping[str, Any]], None]

_error_reporter: ErrorReporter | None = None


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
