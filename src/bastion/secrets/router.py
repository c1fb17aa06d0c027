"""HTTP routes of the secrets API: thin handlers over :class:`SecretsService`.

POST   /api/secrets                    create (Idempotency-Key honoured)     tier secrets_create
GET    /api/secrets/{id}               metadata, never consumes              tier secrets_read
POST   /api/secrets/{id}/reveal        consume one view, return the secret   tier secrets_read
DELETE /api/secrets/{id}               burn (owner, or X-Delete-Token)       tier secrets_read
GET    /api/secrets/{id}/audit         the creator's audit trail             tier secrets_read
GET    /api/secrets                    the signed-in creator's live secrets  tier general
"""

from __future__ import annotations

from typing import Annotated, Any, cast

from litestar import delete, get, post
from litestar.di import NamedDependency
from litestar.middleware import DefineMiddleware
from litestar.params import FromPath, HeaderParameter, JSONBody

from bastion.core.dependencies import AppRequest
from bastion.core.errors import Forbidden
from bastion.core.idempotency import IdempotencyMiddleware
from bastion.core.pagination import limit_param
from bastion.secrets.schemas import (
    CreatedSecret,
    CreateSecretRequest,
    OwnedSecret,
    RevealedSecret,
    RevealRequest,
    SecretAudit,
    SecretMetadata,
)
from bastion.secrets.service import Caller, SecretsService

# core's middleware is typed with the core's own ASGI aliases, which Litestar's stricter types do not accept
_IDEMPOTENT = DefineMiddleware(cast("Any", IdempotencyMiddleware))
DeleteToken = Annotated[str | None, HeaderParameter(name="X-Delete-Token", max_length=128)]


def caller_of(request: AppRequest) -> Caller:
    ctx = request.context
    principal = ctx.principal
    return Caller(
        client=ctx.client,
        rate_key=principal.rate_key if principal else "ip:" + ctx.client,
        owner_id=principal.user_id if principal else None,
    )


def _base_url(request: AppRequest, service: SecretsService) -> str:
    configured = service.settings.public_url
    return configured if configured else str(request.base_url)


@post("/api/secrets", status_code=201, middleware=[_IDEMPOTENT])
async def create_secret(
    request: AppRequest,
    data: JSONBody[CreateSecretRequest],
    secrets_service: NamedDependency[SecretsService],
) -> CreatedSecret:
    return await secrets_service.create(data, caller_of(request), base_url=_base_url(request, secrets_service))


@get("/api/secrets/{secret_id:str}")
async def secret_metadata(secret_id: FromPath[str], secrets_service: NamedDependency[SecretsService]) -> SecretMetadata:
    return await secrets_service.metadata(secret_id)


@post("/api/secrets/{secret_id:str}/reveal", status_code=200)
async def reveal_secret(
    request: AppRequest,
    secret_id: FromPath[str],
    secrets_service: NamedDependency[SecretsService],
    data: JSONBody[RevealRequest | None] = None,
) -> RevealedSecret:
    passphrase = data.passphrase if data is not None else None
    return await secrets_service.reveal(secret_id, passphrase, caller_of(request))


@delete("/api/secrets/{secret_id:str}", status_code=204)
async def burn_secret(
    request: AppRequest,
    secret_id: FromPath[str],
    secrets_service: NamedDependency[SecretsService],
    delete_token: DeleteToken = None,
) -> None:
    await secrets_service.burn(secret_id, delete_token, caller_of(request))


@get("/api/secrets/{secret_id:str}/audit")
async def secret_audit(
    request: AppRequest,
    secret_id: FromPath[str],
    secrets_service: NamedDependency[SecretsService],
    delete_token: DeleteToken = None,
) -> SecretAudit:
    return await secrets_service.audit(secret_id, delete_token, caller_of(request))


@get("/api/secrets")
async def list_secrets(
    request: AppRequest,
    secrets_service: NamedDependency[SecretsService],
    limit: Annotated[int, limit_param(200)] = 200,
) -> list[OwnedSecret]:
    owner = request.principal.user_id
    if owner is None:
        raise Forbidden("Only a user (or a user's API key) owns secrets.")
    return await secrets_service.owned(owner, limit)


route_handlers = [create_secret, secret_metadata, reveal_secret, burn_secret, secret_audit, list_secrets]
