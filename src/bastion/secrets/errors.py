"""Errors of the secrets module, each with a stable code.

AppError
├── Forbidden                 403
│   ├── PassphraseRequired    403 PASSPHRASE_REQUIRED
│   ├── PassphraseInvalid     403 PASSPHRASE_INVALID      (extra: attempts_left)
│   └── AnonymousCreateOff    403 SIGN_IN_REQUIRED
├── NotFound
│   └── SecretNotFound        404 SECRET_NOT_FOUND        (unknown, expired, burned: one body)
├── ValidationFailed
│   └── InvalidSecret         422 VALIDATION_FAILED       (extra: errors [{field, message}])
├── RateLimited
│   ├── SecretLocked          429 SECRET_LOCKED           (Retry-After)
│   └── LiveLimitReached      429 LIVE_SECRETS_LIMIT
└── ServiceUnavailable
    ├── StorageFull           503 SECRETS_STORAGE_FULL    (Retry-After)
    └── SecretKeyUnavailable  503 SECRET_KEY_UNAVAILABLE  (its master key is not configured, or it does not decrypt)
"""

from __future__ import annotations

from bastion.core.errors import Forbidden, NotFound, RateLimited, ServiceUnavailable, ValidationFailed


class PassphraseRequired(Forbidden):
    code, title = "PASSPHRASE_REQUIRED", "This secret needs its passphrase"


class PassphraseInvalid(Forbidden):
    code, title = "PASSPHRASE_INVALID", "Wrong passphrase"


class AnonymousCreateOff(Forbidden):
    code, title = "SIGN_IN_REQUIRED", "Sign in to create secrets"


class SecretNotFound(NotFound):
    code, title = "SECRET_NOT_FOUND", "Secret not found"

    def __init__(self) -> None:
        # One fixed detail for unknown, expired and already viewed ids, so that none can be told apart.
        super().__init__("This secret does not exist, has expired, or was already viewed.")


class InvalidSecret(ValidationFailed):
    """A create request outside the configured bounds (TTL, views, size, ciphertext format)."""


class SecretLocked(RateLimited):
    code, title = "SECRET_LOCKED", "Too many wrong passphrases"


class LiveLimitReached(RateLimited):
    code, title = "LIVE_SECRETS_LIMIT", "Too many live secrets"


class StorageFull(ServiceUnavailable):
    code, title = "SECRETS_STORAGE_FULL", "Secret storage is full"


class SecretKeyUnavailable(ServiceUnavailable):
    """The secret was sealed under a master key this server does not have (removed from BASTION_CRYPTO__KEYS),
    or its ciphertext does not authenticate: an operator's problem, named, rather than a 500."""

    code, title = "SECRET_KEY_UNAVAILABLE", "The key for this secret is not available"
