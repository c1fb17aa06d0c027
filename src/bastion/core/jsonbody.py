"""The JSON decoding policy: one decoder every request body goes through, so that no body can cause a 500.

    from bastion.core.jsonbody import JsonDecoder

    decoder = JsonDecoder(max_depth=64)
    value = decoder.decode(raw)                  # Any: what Litestar's ``data:`` parameters are converted from
    thing = decoder.decode(raw, type=Thing)      # straight into a msgspec type (a 422 when it does not match)

What it refuses, each as a 400 ``MALFORMED_BODY`` problem (never a 500):

* text that is not JSON, or not UTF-8 (msgspec raises ``UnicodeDecodeError`` for an invalid byte inside a
  string, which Litestar's decoder lets through as a 500);
* arrays and objects nested deeper than ``max_depth`` (msgspec recurses, and 10,000 levels end in a
  ``RecursionError``);
* numbers out of range: an integer outside the signed 64-bit range (what PostgreSQL's BIGINT and SQLite
  store) or a float beyond double precision;
* a NUL character (``\\u0000``) anywhere: PostgreSQL text cannot hold one, and no field of ours means one.

Every request goes through :class:`bastion.core.dependencies.AppRequest.json`, which Litestar calls for
``data:`` parameters; a handler that reads the raw body itself decodes it with ``request.decoder``.

The checks cost a few C-level scans of the body in the common case (``bytes.count``/``in``); the exact,
slower scans run only for a body that the quick ones cannot clear (see ``_too_deep`` and ``_big_integer``),
and only after msgspec has accepted it as JSON, so that their regular expression meets no unterminated string.
Hand-written because msgspec has no depth or integer-range option and no JSON library here has both.
"""

from __future__ import annotations

import math
import re
from typing import Any

import msgspec

from bastion.core.errors import MalformedBody, ValidationFailed, validation_errors

__all__ = ["DEFAULT_MAX_DEPTH", "JsonDecoder"]

DEFAULT_MAX_DEPTH = 64
_INT64 = (-(2**63), 2**63 - 1)
# The unrolled form of "(?:[^"\\]|\\.)*": several times faster in the re module.
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_LONG_INT = re.compile(rb"(?<![\d.eE+-])-?\d{19,}(?![\d.eE])")
_DIGITS_AS_ZERO = bytes.maketrans(b"123456789", b"000000000")
_NINETEEN_DIGITS = b"0" * 19
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


class JsonDecoder:
    """Decodes request bodies under one policy (see the module docstring); built once per app."""

    __slots__ = ("_any", "max_depth")

    def __init__(self, max_depth: int = DEFAULT_MAX_DEPTH) -> None:
        self.max_depth = max_depth
        self._any = msgspec.json.Decoder(float_hook=_finite)

    def decode(self, body: bytes, type: Any = None) -> Any:
        """``body`` decoded (into ``type`` when given), or a 400/422 problem saying why not."""
        if b"\\u0000" in body:
            raise MalformedBody("The body contains a NUL character, which no field accepts.")
        try:
            value = self._any.decode(body) if type is None else msgspec.json.decode(body, type=type)
        except msgspec.ValidationError as exc:
            if "out of range" in str(exc):
                raise MalformedBody("The body has a number out of range.") from exc
            raise ValidationFailed(
                "The request does not match the expected schema.", extra=validation_errors([{"message": str(exc)}])
            ) from exc
        except (msgspec.DecodeError, UnicodeDecodeError, RecursionError, ValueError) as exc:
            raise MalformedBody(_reason(exc)) from exc
        self._check_shape(body)
        return value

    def _check_shape(self, body: bytes) -> None:
        """After a successful decode (so every string in ``body`` is well-formed, and the scans below are
        linear): refuse nesting deeper than the policy's and integers out of range."""
        if body.count(b"[") + body.count(b"{") > self.max_depth and _too_deep(body, self.max_depth):
            raise MalformedBody(f"The body nests arrays and objects deeper than {self.max_depth} levels.")
        if _NINETEEN_DIGITS in body.translate(_DIGITS_AS_ZERO) and _big_integer(body):
            raise MalformedBody("The body has an integer outside the 64-bit range.")


def _finite(text: str) -> float:
    """msgspec decodes ``1e400`` as infinity for ``Any``; the policy calls it out of range (a 400)."""
    value = float(text)
    if math.isinf(value):
        raise ValueError("out of range")
    return value


def _outside_strings(body: bytes) -> bytes:
    return _STRING.sub(b'""', body)


def _too_deep(body: bytes, limit: int) -> bool:
    """Whether ``body`` (valid JSON) nests deeper than ``limit``: its brackets, with the innermost pairs
    removed once per level (C-speed string operations, at most ``limit`` rounds). Brackets inside strings
    can only make the first, quick try fail (unbalanced, or deeper): then strings are stripped and it is
    tried again exactly (a regular expression, several times slower)."""
    return _peel(body.translate(None, _NOT_BRACKETS), limit) and _peel(
        _outside_strings(body).translate(None, _NOT_BRACKETS), limit
    )


def _peel(brackets: bytes, limit: int) -> bool:
    for _ in range(limit):
        brackets = brackets.replace(b"[]", b"").replace(b"{}", b"")
        if not brackets:
            return False
    return True


def _big_integer(body: bytes) -> bool:
    return any(not _INT64[0] <= int(match.group()) <= _INT64[1] for match in _LONG_INT.finditer(_outside_strings(body)))


def _reason(exc: BaseException) -> str:
    if isinstance(exc, UnicodeDecodeError):
        return "The body is not valid UTF-8."
    if isinstance(exc, RecursionError):
        return "The body nests arrays and objects too deeply."
    text = str(exc)
    if "out of range" in text.lower():
        return "The body has a number out of range."
    return "The body is not valid JSON."
