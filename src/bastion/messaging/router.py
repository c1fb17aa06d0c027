"""HTTP routes of the messaging API: thin handlers over :class:`Messaging`.

POST /api/messages                  accept one message (Idempotency-Key honoured)   tier messaging_send
POST /api/messages/batch            one template to up to 1,000 recipients          tier messaging_send
GET  /api/messages/{id}             status timeline, attempts, error                tier general
GET  /api/messages                  newest first, cursor pagination, filters        tier general
POST|GET /api/messaging/contacts    contacts with consent and opt-out state         tier general
POST|GET /api/messaging/templates   templates with language and parameter count     tier general
GET  /webhooks/whatsapp             Meta's verification handshake                   tier messaging_webhook
POST /webhooks/whatsapp             signed events: statuses, inbound messages       tier messaging_webhook

A user sees what it owns; an admin sees everyone's.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, cast

from litestar import get, post
from litestar.di import NamedDependency
from litestar.middleware import DefineMiddleware
from litestar.params import FromPath, FromQuery, HeaderParameter, JSONBody, QueryParameter

from bastion.core.dependencies import AppRequest
from bastion.core.idempotency import IdempotencyMiddleware
from bastion.core.principal import require_user
from bastion.messaging.contacts import Directory
from bastion.messaging.schemas import (
    Accepted,
    BatchAccepted,
    ContactView,
    MessagePage,
    MessageView,
    NewContact,
    NewTemplate,
    SendBatch,
    SendMessage,
    TemplateView,
)
from bastion.messaging.service import Messaging
from bastion.messaging.webhooks import Webhooks

_IDEMPOTENT = DefineMiddleware(cast("Any", IdempotencyMiddleware))
IdemKey = Annotated[str | None, HeaderParameter(name="Idempotency-Key", max_length=255)]


def owner_of(request: AppRequest) -> str:
    return require_user(request.principal)


def reader_of(request: AppRequest) -> str | None:
    """The owner whose messages this caller may read; None for an admin (everyone's)."""
    principal = request.principal
    return None if principal.has_role("admin") else require_user(principal)


@post("/api/messages", status_code=202, middleware=[_IDEMPOTENT])
async def send_message(
    request: AppRequest, data: JSONBody[SendMessage], messaging: NamedDependency[Messaging], idem: IdemKey = None
) -> Accepted:
    return await messaging.accept(owner_of(request), data, idem)


@post("/api/messages/batch", status_code=202, middleware=[_IDEMPOTENT])
async def send_batch(
    request: AppRequest, data: JSONBody[SendBatch], messaging: NamedDependency[Messaging], idem: IdemKey = None
) -> BatchAccepted:
    return await messaging.accept_batch(owner_of(request), data, idem)


@get("/api/messages/{message_id:str}")
async def get_message(
    request: AppRequest, message_id: FromPath[str], messaging: NamedDependency[Messaging]
) -> MessageView:
    return await messaging.get(message_id, reader_of(request))


@get("/api/messages")
async def list_messages(
    request: AppRequest,
    messaging: NamedDependency[Messaging],
    cursor: FromQuery[str | None] = None,
    limit: Annotated[int, QueryParameter(name="limit", ge=1, le=200)] = 50,
    status: FromQuery[str | None] = None,
    to: FromQuery[str | None] = None,
    since: FromQuery[dt.datetime | None] = None,
    until: FromQuery[dt.datetime | None] = None,
) -> MessagePage:
    return await messaging.page(
        reader_of(request), cursor=cursor, limit=limit, status=status, to=to, since=since, until=until
    )


@post("/api/messaging/contacts", status_code=200)
async def add_contact(
    request: AppRequest, data: JSONBody[NewContact], messaging_directory: NamedDependency[Directory]
) -> ContactView:
    return await messaging_directory.add_contact(owner_of(request), data)


@get("/api/messaging/contacts")
async def list_contacts(request: AppRequest, messaging_directory: NamedDependency[Directory]) -> list[ContactView]:
    return await messaging_directory.contacts(reader_of(request))


@post("/api/messaging/templates", status_code=201)
async def add_template(
    request: AppRequest, data: JSONBody[NewTemplate], messaging_directory: NamedDependency[Directory]
) -> TemplateView:
    return await messaging_directory.add_template(owner_of(request), data)


@get("/api/messaging/templates")
async def list_templates(request: AppRequest, messaging_directory: NamedDependency[Directory]) -> list[TemplateView]:
    return await messaging_directory.templates(reader_of(request))


route_handlers = [
    send_message,
    send_batch,
    get_message,
    list_messages,
    add_contact,
    list_contacts,
    add_template,
    list_templates,
]


@get("/webhooks/whatsapp", media_type="text/plain")
async def whatsapp_handshake(
    messaging_webhooks: NamedDependency[Webhooks],
    mode: Annotated[str | None, QueryParameter(name="hub.mode")] = None,
    token: Annotated[str | None, QueryParameter(name="hub.verify_token")] = None,
    challenge: Annotated[str | None, QueryParameter(name="hub.challenge", max_length=200)] = None,
) -> str:
    return messaging_webhooks.handshake(mode, token, challenge)


@post("/webhooks/whatsapp", status_code=200)
async def whatsapp_events(request: AppRequest, messaging_webhooks: NamedDependency[Webhooks]) -> dict[str, int]:
    applied = await messaging_webhooks.receive(await request.body(), request.headers.get("x-hub-signature-256"))
    return {"applied": applied}


route_handlers += [whatsapp_handshake, whatsapp_events]
