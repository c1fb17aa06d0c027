"""Errors of the AI gateway, with the stable codes clients see.

Our exception hierarchy (core classes in brackets)::

    [NotFound]            ModelNotFound             404 MODEL_NOT_FOUND
    [ValidationFailed]    RequestTooLarge           422 REQUEST_TOO_LARGE       messages, characters, prompt length
                          UnsupportedFeature        422 UNSUPPORTED_FEATURE     tools, n > 1
    [RateLimited]         TokenBudgetExceeded       429 TOKEN_BUDGET_EXCEEDED   with Retry-After
    [BadRequest]          ProviderRejected          400 PROVIDER_REJECTED       the upstream called the request invalid
    [BadGateway]          ProviderError             502 PROVIDER_ERROR          auth failure, 5xx, unreachable, garbage
    [ServiceUnavailable]  ProviderRateLimited       503 PROVIDER_RATE_LIMIT     upstream 429, with Retry-After
                          ProviderUnavailable       503 PROVIDER_UNAVAILABLE    circuit open, bulkhead full
    [GatewayTimeout]      ProviderTimeout           504 PROVIDER_TIMEOUT

Details never carry the upstream's own error text or anything of the request: an upstream's message
can quote the key it refused.
"""

from __future__ import annotations

from bastion.core.errors import (
    BadGateway,
    BadRequest,
    GatewayTimeout,
    NotFound,
    RateLimited,
    ServiceUnavailable,
    ValidationFailed,
)


class ModelNotFound(NotFound):
    """The model named in the request is neither a configured model nor an alias of one."""

    code, title = "MODEL_NOT_FOUND", "Unknown model"


class RequestTooLarge(ValidationFailed):
    """Too many messages, too much text, or a prompt over its route's limit."""

    code, title = "REQUEST_TOO_LARGE", "Request exceeds the gateway's limits"


class UnsupportedFeature(ValidationFailed):
    """The request asks for something this gateway does not serve (tool calls, several choices)."""

    code, title = "UNSUPPORTED_FEATURE", "Feature not supported"


class TokenBudgetExceeded(RateLimited):
    """The caller has used its tokens for the minute or the day; Retry-After says when they come back."""

    code, title = "TOKEN_BUDGET_EXCEEDED", "Token budget exhausted"


class ProviderRejected(BadRequest):
    """The upstream refused the request as invalid (HTTP 400/413/422), e.g. a parameter its model lacks."""

    code, title = "PROVIDER_REJECTED", "The provider rejected the request"


class ProviderError(BadGateway):
    """The upstream failed: it refused Bastion's credentials, answered 5xx, could not be reached, or sent
    something that is not a valid answer."""

    code, title = "PROVIDER_ERROR", "The AI provider failed"


class ProviderRateLimited(ServiceUnavailable):
    """The upstream is rate limiting Bastion (HTTP 429); Retry-After carries its hint."""

    code, title = "PROVIDER_RATE_LIMIT", "The AI provider is rate limiting requests"


class ProviderUnavailable(ServiceUnavailable):
    """Calls to the provider are paused after repeated failures (circuit open), or too many are in flight."""

    code, title = "PROVIDER_UNAVAILABLE", "The AI provider is unavailable"


class ProviderTimeout(GatewayTimeout):
    """The upstream did not answer (or went silent mid-answer) within its timeout."""

    code, title = "PROVIDER_TIMEOUT", "The AI provider timed out"
