"""The AI gateway's upstreams: core's :class:`~bastion.core.upstream.Upstream` per provider, with the
classifier of the errors the adapters raise (aiohttp's, and those of ``providers/base.py``).

    upstream = provider_upstream("openai", settings)                     # breaker and metrics: "ai:openai"
    answer = await upstream.call(lambda: provider.complete(request))
    stream = await upstream.open_stream(lambda: provider.open_stream(request))

What :func:`classify` decides:

* **Retries** only until the upstream has answered 2xx (never once a byte of the answer has been read),
  and only on connection errors, 429 and 5xx. A 429 whose Retry-After is longer than
  ``max_retry_wait_seconds`` is not retried (core's rule): the fallback is faster. A read timeout is not
  retried: the upstream may be working on the request.
* **Circuit breaker**: connection errors, timeouts, 429, 5xx and invalid answers count as failures; any
  other 4xx does not (the upstream is healthy: the request is wrong, or our key is).
* **Fallback**: to the next target, on anything but the request's own fault (400, 413, 422).

The bulkhead is held for the whole call, and for a stream until it ends. The timeout covers the whole call
when not streaming; the response headers when streaming (the session's read timeout,
``read_timeout_seconds``, then bounds each silence between pieces). Failures are translated into the
gateway's public errors by :func:`public_error`.
"""

from __future__ import annotations

import sys
from typing import Any

from bastion.ai.errors import ProviderError, ProviderRateLimited, ProviderRejected, ProviderTimeout, ProviderUnavailable
from bastion.ai.providers.base import UpstreamBroken, UpstreamInvalid, UpstreamStatus, UpstreamStreamError
from bastion.ai.settings import ProviderSettings
from bastion.core.errors import AppError, BulkheadFull, CircuitOpen
from bastion.core.upstream import Upstream, UpstreamSettings, Verdict

_REQUESTS_FAULT = (400, 413, 422)
_RETRY = Verdict(failure=True, retry=True, fall_back=True)
_FAILED = Verdict(failure=True, retry=False, fall_back=True)
_REJECTED = Verdict(failure=False, retry=False, fall_back=False)
"""The request is invalid: any target would refuse it."""
_NOT_ITS_FAILURE = Verdict(failure=False, retry=False, fall_back=True)
"""The upstream is healthy but would not serve this (it refused our key, lacks the model): another might."""


def _aiohttp() -> Any:
    """aiohttp if a network provider has loaded it (with its first session), else None: before that, no
    exception can be one of aiohttp's, and the local-only gateway need not import it to find that out."""
    return sys.modules.get("aiohttp")


def provider_upstream(name: str, settings: ProviderSettings) -> Upstream:
    """The upstream of the provider ``name``: its breaker, bulkhead and metrics are named ``ai:<name>``."""
    return Upstream(f"ai:{name}", upstream_settings(settings), classify)


def upstream_settings(settings: ProviderSettings) -> UpstreamSettings:
    """Core's upstream settings from a provider's (the bulkhead waits as long as connecting may take)."""
    return UpstreamSettings(
        timeout_seconds=settings.timeout_seconds,
        connect_timeout_seconds=settings.connect_timeout_seconds,
        retries=settings.retries,
        max_retry_wait_seconds=settings.max_retry_wait_seconds,
        breaker_failures=settings.breaker_failures,
        breaker_reset_seconds=settings.breaker_reset_seconds,
        max_concurrent=settings.max_concurrent,
        max_waiting=settings.max_waiting,
    )


def classify(exc: BaseException) -> Verdict:
    """The one verdict on an error of a provider call (see the module docstring)."""
    if isinstance(exc, UpstreamStatus):
        status = exc.status
        if status == 429:
            return Verdict(failure=True, retry=True, fall_back=True, retry_after=exc.retry_after)
        if status >= 500:
            return _RETRY  # backing off as usual: a 5xx's Retry-After is not waited for
        return _REJECTED if status in _REQUESTS_FAULT else _NOT_ITS_FAILURE
    aiohttp = _aiohttp()
    if aiohttp is not None and isinstance(exc, aiohttp.ClientError):
        # aiohttp's connection errors reach here only from before the response (a drop after it is
        # UpstreamBroken): retried, but a read timeout (a TimeoutError too) is not
        if isinstance(exc, aiohttp.ConnectionTimeoutError):
            return _RETRY
        if isinstance(exc, aiohttp.ClientConnectionError) and not isinstance(exc, TimeoutError):
            return _RETRY
        return _FAILED
    if isinstance(exc, TimeoutError | UpstreamBroken | UpstreamInvalid | UpstreamStreamError):
        return _FAILED
    return _NOT_ITS_FAILURE


def public_error(exc: BaseException) -> AppError:
    """What the client is told about ``exc``; never the upstream's own words (they may quote a key)."""
    if isinstance(exc, AppError) and not isinstance(exc, CircuitOpen | BulkheadFull):
        return exc
    if isinstance(exc, CircuitOpen):
        return ProviderUnavailable("Calls to the AI provider are paused after repeated failures.", headers=exc.headers)
    if isinstance(exc, BulkheadFull):
        return ProviderUnavailable("Too many requests are in flight to the AI provider.", retry_after=1)
    if isinstance(exc, UpstreamStatus):
        status = exc.status
        if status == 429:
            return ProviderRateLimited(
                "The AI provider is rate limiting requests; retry later.",
                retry_after=exc.retry_after if exc.retry_after is not None else 1,
            )
        if status in (401, 403):
            return ProviderError("The AI provider refused the gateway's credentials.")
        if status in (400, 413, 422):
            return ProviderRejected(
                "The AI provider rejected the request as invalid.", extra={"upstream_status": status}
            )
        return ProviderError(f"The AI provider failed (HTTP {status}).", extra={"upstream_status": status})
    if isinstance(exc, TimeoutError):  # aiohttp's connect and read timeouts are TimeoutErrors too
        return ProviderTimeout("The AI provider did not answer in time.")
    if isinstance(exc, UpstreamStreamError):
        return ProviderError("The AI provider reported an error while answering.")
    if isinstance(exc, UpstreamInvalid):
        return ProviderError("The AI provider sent an invalid answer.")
    return ProviderError("The AI provider could not be reached or dropped the connection.")
