"""structlog setup: JSON lines in production, readable lines in development, secrets redacted everywhere.

Redaction works on keys (any key that names a credential, a prompt, a message text or a phone number, at any
depth) and on values (bearer tokens, Bastion API keys, phone numbers and the like inside any other string), so a
secret that reaches a log call by mistake is still not written. The error tracker applies the same
(``observability/sentry.py``). The standard library's loggers (servers, SQLAlchemy, httpx) go through the same
processors.
"""

from __future__ import annotations

import asyncio
import atexit
import contextvars
import logging
import re
import sys
import time
from collections.abc import Mapping
from typing import Any, TextIO

import msgspec
import structlog
from structlog.types import EventDict, Processor, WrappedLogger

REDACTED = "[REDACTED]"
request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
_SENSITIVE_KEY = re.compile(
    r"(authorization|cookie|passw|passphrase|secret|token|api[-_]?key|apikey|credential|private[-_]?key"
    r"|session|csrf|signature|prompt|completion|messages|plaintext)",
    re.IGNORECASE,
)
_SENSITIVE_VALUE = re.compile(
    r"(?i:bearer|basic)\s+[A-Za-z0-9._~+/=\-]{8,}"
    r"|\b(?:bsk|sk|pk|rk|whsec|ghp|gho|github_pat|xox[abp])[-_][A-Za-z0-9_\-]{8,}"
    r"|\beyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]*"
    r"|://[^/\s:@]+:[^/\s@]+@"
)
# ``password=...``, ``token: ...`` and the like inside free text (exception messages, SQL, URLs).
_SENSITIVE_ASSIGNMENT = re.compile(
    r"(?i)\b((?:pass(?:word|wd|phrase)?|secret|token|api[-_]?key|auth(?:orization)?|credential)s?"
    r"[\"']?\s*[=:]\s*)(\"[^\"]*\"|'[^']*'|[^\s,;&'\"]+)"
)
# A phone number: E.164 (``+`` and 7-15 digits, spaces or dashes allowed) or a bare run of 9-15 digits (WhatsApp's
# ``wa_id``). Digits next to letters or dots (versions, addresses, hex ids) are left alone.
_PHONE = re.compile(r"(?<![\w.])(?:\+\d[\d \-]{6,18}\d|\d{9,15})(?![\w.])")
# Keys whose values are message texts or phone numbers, by exact name (``context`` or ``total`` must stay readable).
_CONTENT_KEYS = frozenset(
    {"body", "text", "content", "caption", "message_text", "phone", "phone_number", "msisdn", "wa_id", "to", "from"}
)
# Keys the edge writes on every access line; their values are ours, so skipping the scan is safe and
# keeps the hot path short.
_TRUSTED_KEYS = frozenset(
    {
        "event",
        "level",
        "timestamp",
        "request_id",
        "method",
        "route",
        "status",
        "duration_ms",
        "client",
        "principal",
        "bytes",
        "logger",
    }
)
_KEY_CACHE: dict[str, bool] = {}


def _key_is_sensitive(key: str) -> bool:
    hit = _KEY_CACHE.get(key)
    if hit is None:
        hit = bool(_SENSITIVE_KEY.search(key)) or key.lower() in _CONTENT_KEYS
        if len(_KEY_CACHE) < 4096:
            _KEY_CACHE[key] = hit
    return hit


def _scrub_value(value: Any, depth: int = 0) -> Any:
    if isinstance(value, str):
        if len(value) < 8:
            return value
        value = _SENSITIVE_ASSIGNMENT.sub(r"\1" + REDACTED, _SENSITIVE_VALUE.sub(REDACTED, value))
        return _PHONE.sub(REDACTED, value) if any(c.isdigit() for c in value) else value
    if depth > 6:
        return value
    if isinstance(value, Mapping):
        return {
            k: (REDACTED if isinstance(k, str) and _key_is_sensitive(k) else _scrub_value(v, depth + 1))
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [_scrub_value(v, depth + 1) for v in value]
    return value


def redact(_logger: WrappedLogger, _name: str, event_dict: EventDict) -> EventDict:
    """structlog processor: blank credential-named keys and credential-shaped values."""
    for key, value in event_dict.items():
        # Numbers are never credentials, and counts such as ``prompt_tokens`` must stay readable.
        if key in _TRUSTED_KEYS or value is None or isinstance(value, int | float):
            continue
        event_dict[key] = REDACTED if _key_is_sensitive(key) else _scrub_value(value)
    return event_dict


def redact_text(text: str) -> str:
    return str(_scrub_value(text))


def key_is_sensitive(key: str) -> bool:
    """The log redaction's verdict on a key: does its value name a credential, a prompt or a secret payload?"""
    return _key_is_sensitive(key)


_encoder = msgspec.json.Encoder(enc_hook=repr)


def _render_json(_logger: WrappedLogger, _name: str, event_dict: EventDict) -> bytes:
    return _encoder.encode(event_dict)


def _format_exc(_logger: WrappedLogger, _name: str, event_dict: EventDict) -> EventDict:
    if "exc_info" in event_dict:
        event_dict = structlog.processors.format_exc_info(_logger, _name, event_dict)
        if "exception" in event_dict:
            event_dict["exception"] = _scrub_value(event_dict["exception"])
    return event_dict


class LineWriter:
    """structlog logger writing JSON lines to a binary stream, batched.

    Info and debug lines are buffered and written together at most ``interval`` seconds later (or
    once ``max_buffer`` bytes are waiting), one write and flush for many lines instead of one each;
    warnings and errors are written at once, and the buffer is flushed at shutdown and exit.
    """

    def __init__(self, stream: Any, *, interval: float = 0.05, max_buffer: int = 65_536) -> None:
        self._stream = stream
        self._interval = interval
        self._max = max_buffer
        self._parts: list[bytes] = []
        self._size = 0
        self._scheduled = False
        atexit.register(self.flush)

    def msg(self, message: bytes | str) -> None:
        if isinstance(message, str):
            message = message.encode("utf-8", "replace")
        self._parts.append(message)
        self._size += len(message) + 1
        if self._size >= self._max:
            self.flush()
        elif not self._scheduled:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                self.flush()
                return
            self._scheduled = True
            loop.call_later(self._interval, self.flush)

    def now(self, message: bytes | str) -> None:
        self.msg(message)
        self.flush()

    def flush(self) -> None:
        self._scheduled = False
        if not self._parts:
            return
        parts, self._parts, self._size = self._parts, [], 0
        parts.append(b"")
        try:
            self._stream.write(b"\n".join(parts))
            self._stream.flush()
        except (OSError, ValueError):
            return  # stdout closed (the process is exiting) or the pipe broke: nowhere to log to

    debug = info = log = msg
    warning = warn = error = critical = exception = fatal = now


def add_request_id(_logger: WrappedLogger, _name: str, event_dict: EventDict) -> EventDict:
    request_id = request_id_var.get()
    if request_id is not None:
        event_dict.setdefault("request_id", request_id)
    return event_dict


class _Clock:
    """ISO-8601 UTC timestamps with microseconds; the date part is formatted once per second."""

    second = -1
    prefix = ""


def timestamp(_logger: WrappedLogger, _name: str, event_dict: EventDict) -> EventDict:
    now = time.time_ns()
    second = now // 1_000_000_000
    if second != _Clock.second:
        _Clock.prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        _Clock.second = second
    event_dict["timestamp"] = "%s.%06dZ" % (_Clock.prefix, now // 1000 % 1_000_000)  # noqa: UP031 - fastest
    return event_dict


_writer: LineWriter | None = None


class AccessLog:
    """The one-line-per-request access log.

    The line goes through the same structlog processors as every other event (timestamp, then the
    JSON or console renderer) but not through a ``BoundLogger``: its per-call machinery (copying the
    bound context, proxying the method) cost more than everything else the edge does for a request,
    and the access line has no bound context. It skips the redaction scan too: every field is one
    the edge fills in itself (the route template, never the raw path).
    """

    def __init__(self) -> None:
        self.processors: list[Processor] = []
        self.write: Any = print
        self.min_level = logging.INFO

    def emit(self, fields: dict[str, Any], *, slow: bool = False) -> None:
        """Write ``fields`` as a ``request`` line (info), or ``slow request`` (warning)."""
        if (logging.WARNING if slow else logging.INFO) < self.min_level:
            return
        level = "warning" if slow else "info"
        fields["event"] = "slow request" if slow else "request"
        fields["level"] = level
        rendered: Any = fields
        for processor in self.processors:
            rendered = processor(None, level, rendered)
        self.write(rendered)


access_log = AccessLog()


def configure(*, level: str = "info", json: bool = True, stream: TextIO | None = None) -> None:
    """Configure structlog and route the standard library's logging through it."""
    global _writer
    out = stream if stream is not None else sys.stdout
    numeric = logging.getLevelNamesMapping()[level.upper()]
    shared: list[Processor] = [
        add_request_id,
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        timestamp,
        redact,
    ]
    binary = getattr(out, "buffer", None)
    renderer: Processor
    factory: Any
    if json and binary is not None:
        # One writer per process, pointed at the current stream: loggers that structlog cached on first
        # use keep a reference to it, so they follow when configure() runs again (tests, reloads).
        if _writer is None:
            _writer = LineWriter(binary)
        else:
            _writer.flush()
            _writer._stream = binary
        writer = _writer
        renderer = _render_json
        factory = lambda *_args: writer  # noqa: E731
    else:
        writer = None
        renderer = structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
        factory = structlog.PrintLoggerFactory(out)
    access_log.processors = [timestamp, renderer]
    access_log.min_level = numeric
    access_log.write = writer.msg if writer is not None else (lambda line: print(line, file=out))

    structlog.configure(
        processors=[*shared, _format_exc, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=factory,
        cache_logger_on_first_use=True,
    )

    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            _format_exc,
            structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False),
        ],
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric)
    for noisy in ("uvicorn.access", "granian.access", "httpx", "httpcore", "aiosqlite", "asyncio"):
        logging.getLogger(noisy).setLevel(max(numeric, logging.WARNING))


def flush() -> None:
    if _writer is not None:
        _writer.flush()


def get_logger(name: str | None = None) -> Any:
    return structlog.get_logger(name) if name else structlog.get_logger()
