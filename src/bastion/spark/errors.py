"""Errors of the Spark runtime, with the stable codes clients see.

Our exception hierarchy (core classes in brackets)::

    [NotFound]          KeyNotFound         404 KV_KEY_NOT_FOUND      the Spark client reads this as "undefined"
    [ValidationFailed]  InvalidKey          422 KV_KEY_INVALID        empty, too long, control characters
                        InvalidValue        422 KV_VALUE_INVALID      not UTF-8 JSON text
                        InvalidCollection   422 KV_COLLECTION_INVALID
    [PayloadTooLarge]   ValueTooLarge       413 KV_VALUE_TOO_LARGE
"""

from __future__ import annotations

from bastion.core.errors import NotFound, PayloadTooLarge, ValidationFailed


class KeyNotFound(NotFound):
    """No value is stored under this key (in this app and collection)."""

    code, title = "KV_KEY_NOT_FOUND", "Key not found"


class InvalidKey(ValidationFailed):
    """A key must have 1-512 characters and no control characters."""

    code, title = "KV_KEY_INVALID", "Invalid key"


class InvalidValue(ValidationFailed):
    """A value must be JSON text (the client sends ``JSON.stringify(value)``), encoded as UTF-8."""

    code, title = "KV_VALUE_INVALID", "Invalid value"


class InvalidCollection(ValidationFailed):
    """A collection name must have 1-64 characters and no control characters."""

    code, title = "KV_COLLECTION_INVALID", "Invalid collection"


class ValueTooLarge(PayloadTooLarge):
    """A value may be at most 1 MiB of JSON text (``BASTION_SPARK__MAX_VALUE_BYTES``)."""

    code, title = "KV_VALUE_TOO_LARGE", "Value too large"
