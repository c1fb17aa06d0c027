"""The WhatsApp Cloud API client: one send, on core's upstream path, its errors classified by Meta's
``error.code`` (never by the HTTP status, which differs between copies of Meta's own tables).

    client = WhatsAppClient(platform.http, settings.whatsapp)
    wamid = await client.send(payload)          # raises MetaError (with .kind) or a transport error

===============================================  ===========  =================================================
Meta ``error.code``                              kind         what the pipeline does
===============================================  ===========  =================================================
4, 80007, 130429, 131056                         throttled    retried later, with backoff (not the API's fault)
131048, 131049                                   quality      failed; the contact is suppressed
100, 131026, 131047, 190, 368, any other 4xx     permanent    failed, with the code and Meta's reason
1, 2, 131000, 131016, 5xx, timeouts, drops        transient    retried later, with backoff
===============================================  ===========  =================================================
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal

import msgspec

from bastion.core.http import classify_http
from bastion.core.upstream import Upstream, UpstreamSettings, Verdict

if TYPE_CHECKING:
    import httpx

    from bastion.core.http import HttpClients
    from bastion.messaging.settings import WhatsAppSettings

Kind = Literal["throttled", "quality", "permanent", "transient"]
THROTTLED = frozenset({4, 80007, 130429, 131056})
QUALITY = frozenset({131048, 131049})
TRANSIENT = frozenset({1, 2, 131000, 131016})


def kind_of(code: int | None, http_status: int) -> Kind:
    if code in THROTTLED:
        return "throttled"
    if code in QUALITY:
        return "quality"
    if code in TRANSIENT or (code is None and http_status >= 500) or (code is None and http_status == 429):
        return "transient"
    if code is None and http_status < 400:
        return "transient"  # an answer without a wamid: treat as not taken
    return "permanent"


class MetaError(Exception):
    """An error answer of the Cloud API (or an answer without a message id)."""

    def __init__(self, code: int | None, http_status: int, reason: str) -> None:
        super().__init__(f"whatsapp error {code} (HTTP {http_status}): {reason}")
        self.code = code
        self.http_status = http_status
        self.reason = reason[:500]
        self.kind: Kind = kind_of(code, http_status)


_NOT_FAILURE = Verdict(failure=False, retry=False, fall_back=False)
_FAILURE = Verdict(failure=True, retry=False, fall_back=False)


def classify(exc: BaseException) -> Verdict:
    """The upstream's classifier: only transient errors count against the circuit breaker; nothing is retried
    inside one attempt (the pipeline decides whether and when to send again)."""
    if isinstance(exc, MetaError):
        return _FAILURE if exc.kind == "transient" else _NOT_FAILURE
    verdict = classify_http(exc)
    return Verdict(failure=verdict.failure, retry=False, fall_back=False)


class _ErrorBody(msgspec.Struct):
    code: int | None = None
    message: str = ""
    error_data: dict[str, Any] | None = None


class _ErrorEnvelope(msgspec.Struct):
    error: _ErrorBody


class _SentId(msgspec.Struct):
    id: str


class _Sent(msgspec.Struct):
    messages: list[_SentId] = []


def parse_answer(status: int, body: bytes) -> str:
    """The ``wamid`` of a success, else :class:`MetaError` from Meta's error envelope."""
    if status < 300:
        try:
            sent = msgspec.json.decode(body, type=_Sent)
        except msgspec.DecodeError:
            raise MetaError(None, status, "unreadable success answer") from None
        if sent.messages:
            return sent.messages[0].id
        raise MetaError(None, status, "no message id in the answer")
    try:
        error = msgspec.json.decode(body, type=_ErrorEnvelope).error
    except msgspec.DecodeError:
        raise MetaError(None, status, f"HTTP {status}") from None
    details = (error.error_data or {}).get("details")
    reason = f"{error.message}: {details}" if details else error.message
    raise MetaError(error.code, status, reason or f"HTTP {status}")


class WhatsAppClient:
    def __init__(self, http: HttpClients, settings: WhatsAppSettings, *, transport: Any = None) -> None:
        self.settings = settings
        upstream = UpstreamSettings(
            timeout_seconds=settings.timeout_seconds, retries=0, max_concurrent=settings.max_concurrent
        )
        self.upstream = Upstream("whatsapp", upstream, classify)
        self.path = f"/{settings.api_version}/{settings.phone_number_id}/messages"
        self._http, self._upstream_settings, self._transport = http, upstream, transport

    @cached_property
    def _client(self) -> httpx.AsyncClient:
        """Made with the first send: httpx (12 MB) is imported with the first outbound client, not at start-up."""
        return self._http.for_upstream(
            "whatsapp",
            self._upstream_settings,
            base_url=self.settings.base_url,
            headers={"Authorization": f"Bearer {self.settings.access_token.get_secret_value()}"},
            transport=self._transport,
        )

    async def send(self, payload: dict[str, Any]) -> str:
        """Send one message; its ``wamid``. One attempt (retries=0): a repeat is the pipeline's decision."""
        body = msgspec.json.encode(payload)

        async def attempt() -> str:
            response = await self._client.post(self.path, content=body, headers={"Content-Type": "application/json"})
            return parse_answer(response.status_code, await response.aread())

        return await self.upstream.call(attempt, retries=0)


def payload_of(
    to: str, kind: str, text: str | None, template: str | None, language: str | None, params: list[str]
) -> dict[str, Any]:
    """Meta's wire format of a text or template message."""
    if kind == "text":
        return {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": to,
            "type": "text",
            "text": {"preview_url": False, "body": text or ""},
        }
    components = [{"type": "body", "parameters": [{"type": "text", "text": p} for p in params]}] if params else []
    return {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": to,
        "type": "template",
        "template": {"name": template, "language": {"code": language}, "components": components},
    }
