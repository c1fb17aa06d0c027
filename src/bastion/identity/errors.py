"""Errors of the identity module, each with a stable code.

AppError
├── BadRequest
│   ├── OAuthStateInvalid       400 OAUTH_STATE_INVALID     (missing, expired, replayed, other browser)
│   ├── OAuthDenied             400 OAUTH_DENIED            (the provider sent error=...)
│   └── OAuthCodeRejected       400 OAUTH_CODE_REJECTED     (invalid_grant: bad code, PKCE mismatch)
├── Unauthorized
│   ├── InvalidCredentials      401 INVALID_CREDENTIALS     (one body for unknown user and wrong password)
│   ├── InvalidToken            401 INVALID_TOKEN           (expired, tampered, revoked; WWW-Authenticate)
│   └── RefreshRejected         401 REFRESH_TOKEN_INVALID   (unknown, expired, spent, revoked)
├── Forbidden
│   ├── CsrfFailed              403 CSRF_FAILED
│   ├── AccountDisabled         403 ACCOUNT_DISABLED        (only once the caller proved who they are)
│   ├── RegistrationClosed      403 REGISTRATION_CLOSED
│   ├── ScopeNotGrantable       403 SCOPE_NOT_GRANTABLE
│   └── PlanLimitReached        403 PLAN_LIMIT_REACHED
├── NotFound
│   ├── ApiKeyNotFound          404 API_KEY_NOT_FOUND
│   ├── UserNotFound            404 USER_NOT_FOUND
│   └── UnknownProvider         404 OAUTH_PROVIDER_NOT_FOUND
├── Conflict
│   ├── EmailTaken              409 EMAIL_TAKEN
│   ├── LoginTaken              409 LOGIN_TAKEN
│   └── OAuthAccountLinked      409 OAUTH_ACCOUNT_LINKED
├── ValidationFailed
│   └── InvalidAccountData      422 VALIDATION_FAILED       (extra: errors [{field, message}])
├── RateLimited
│   └── TooManyAttempts         429 TOO_MANY_ATTEMPTS       (per account; Retry-After)
├── BadGateway
│   └── OAuthProviderError      502 OAUTH_PROVIDER_ERROR
└── GatewayTimeout
    └── OAuthProviderTimeout    504 OAUTH_PROVIDER_TIMEOUT
"""

from __future__ import annotations

from bastion.core.errors import (
    BadGateway,
    BadRequest,
    Conflict,
    Forbidden,
    GatewayTimeout,
    NotFound,
    RateLimited,
    Unauthorized,
    ValidationFailed,
)

_BEARER = 'Bearer realm="bastion"'


class OAuthStateInvalid(BadRequest):
    code, title = "OAUTH_STATE_INVALID", "The sign-in attempt is not valid"


class OAuthDenied(BadRequest):
    code, title = "OAUTH_DENIED", "The provider did not grant access"


class OAuthCodeRejected(BadRequest):
    code, title = "OAUTH_CODE_REJECTED", "The provider rejected the authorization code"


class InvalidCredentials(Unauthorized):
    code, title = "INVALID_CREDENTIALS", "Invalid email or password"

    def __init__(self) -> None:
        # One fixed body whether the account exists or not, so that a failed login reveals nothing.
        super().__init__("The email or password is not correct.")


class InvalidToken(Unauthorized):
    code, title = "INVALID_TOKEN", "The credential is not valid"

    def __init__(self, detail: str = "The credential is invalid, expired or revoked.") -> None:
        super().__init__(detail, headers={"WWW-Authenticate": _BEARER + ', error="invalid_token"'})


class RefreshRejected(Unauthorized):
    code, title = "REFRESH_TOKEN_INVALID", "The refresh token is not valid"

    def __init__(self) -> None:
        super().__init__("The refresh token is invalid, expired or revoked; sign in again.")


class CsrfFailed(Forbidden):
    code, title = "CSRF_FAILED", "CSRF check failed"


class AccountDisabled(Forbidden):
    code, title = "ACCOUNT_DISABLED", "This account is disabled"


class RegistrationClosed(Forbidden):
    code, title = "REGISTRATION_CLOSED", "Registration is not open"


class ScopeNotGrantable(Forbidden):
    code, title = "SCOPE_NOT_GRANTABLE", "A credential cannot grant scopes it does not hold"


class PlanLimitReached(Forbidden):
    code, title = "PLAN_LIMIT_REACHED", "Your plan's limit is reached"


class ApiKeyNotFound(NotFound):
    code, title = "API_KEY_NOT_FOUND", "API key not found"


class UserNotFound(NotFound):
    code, title = "USER_NOT_FOUND", "User not found"


class UnknownProvider(NotFound):
    code, title = "OAUTH_PROVIDER_NOT_FOUND", "No such sign-in provider"


class EmailTaken(Conflict):
    code, title = "EMAIL_TAKEN", "An account with this email exists"


class LoginTaken(Conflict):
    code, title = "LOGIN_TAKEN", "This login is taken"


class OAuthAccountLinked(Conflict):
    code, title = "OAUTH_ACCOUNT_LINKED", "This provider account belongs to another user"


class InvalidAccountData(ValidationFailed):
    """Account fields outside the rules (email syntax, password length, login characters, scopes)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message, extra={"errors": [{"field": field, "message": message}]})


class TooManyAttempts(RateLimited):
    code, title = "TOO_MANY_ATTEMPTS", "Too many sign-in attempts for this account"


class OAuthProviderError(BadGateway):
    code, title = "OAUTH_PROVIDER_ERROR", "The sign-in provider failed"


class OAuthProviderTimeout(GatewayTimeout):
    code, title = "OAUTH_PROVIDER_TIMEOUT", "The sign-in provider did not answer in time"
