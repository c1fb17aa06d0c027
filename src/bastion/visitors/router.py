"""HTTP routes of the visitors API: thin handlers over the services; every query is scoped to the caller's
sites (see access.py). Tiers: ``visitors_gate`` for the gate, ``visitors_upload`` for files, else general.

POST|GET /api/sites                              create (platform admin) | the caller's sites and roles
POST|GET /api/sites/{id}/members                 the site admin adds hosts, guards, admins | lists them
GET  /api/sites/{id}/audit                       who invited, approved, checked in and out (site admin)
POST|GET /api/visitors                           register a visitor | the visitors the caller may see
GET|PATCH|DELETE /api/visitors/{id}              read | change (blocked: guard, admin) | erase (admin)
PUT|GET /api/visitors/{id}/photo|id-document     upload an image (re-encoded) | read it
POST|GET /api/visits                             invite or register a walk-up | cursor page, filters
GET  /api/visits/{id}                            one visit
POST /api/visits/{id}/approve|reject|cancel      the host (or the site admin) decides
POST /api/visits/{id}/check-in|check-out         the guard scans the pass code
GET  /passes/{visit_id}/{code}                   the pass's QR code (PNG; the code is the credential)
"""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Response, delete, get, patch, post, put
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from bastion.core.dependencies import AppRequest
from bastion.core.principal import require_user
from bastion.visitors.gate import Gate
from bastion.visitors.passes import Passes
from bastion.visitors.people import People
from bastion.visitors.schemas import (
    AuditEntry,
    MemberView,
    NewMember,
    NewSite,
    NewVisit,
    NewVisitor,
    PassScan,
    SiteView,
    VisitorPatch,
    VisitorView,
    VisitPage,
    VisitView,
)
from bastion.visitors.sites import Sites
from bastion.visitors.uploads import Kind, Uploads
from bastion.visitors.visits import Visits

Limit = Annotated[int, QueryParameter(name="limit", ge=1, le=200)]


def me(request: AppRequest) -> str:
    return require_user(request.principal)


@post("/api/sites", status_code=201)
async def create_site(request: AppRequest, data: JSONBody[NewSite], visitors_sites: NamedDependency[Sites]) -> SiteView:
    return await visitors_sites.create(me(request), request.principal.has_role("admin"), data)


@get("/api/sites")
async def my_sites(request: AppRequest, visitors_sites: NamedDependency[Sites]) -> list[SiteView]:
    return await visitors_sites.mine(me(request))


@post("/api/sites/{site_id:str}/members", status_code=201)
async def add_member(
    request: AppRequest, site_id: FromPath[str], data: JSONBody[NewMember], visitors_sites: NamedDependency[Sites]
) -> MemberView:
    return await visitors_sites.add_member(me(request), site_id, data)


@get("/api/sites/{site_id:str}/members")
async def list_members(
    request: AppRequest, site_id: FromPath[str], visitors_sites: NamedDependency[Sites]
) -> list[MemberView]:
    return await visitors_sites.members(me(request), site_id)


@get("/api/sites/{site_id:str}/audit")
async def site_audit(
    request: AppRequest, site_id: FromPath[str], visitors_sites: NamedDependency[Sites]
) -> list[AuditEntry]:
    return await visitors_sites.audit_trail(me(request), site_id)


@post("/api/visitors", status_code=201)
async def create_visitor(
    request: AppRequest, data: JSONBody[NewVisitor], visitors_people: NamedDependency[People]
) -> VisitorView:
    return await visitors_people.create(me(request), data)


@get("/api/visitors")
async def list_visitors(
    request: AppRequest,
    visitors_people: NamedDependency[People],
    site_id: FromQuery[str | None] = None,
    cursor: FromQuery[str | None] = None,
    limit: Limit = 50,
) -> dict[str, Any]:
    items, after = await visitors_people.page(me(request), site_id=site_id, cursor=cursor, limit=limit)
    return {"items": items, "next_cursor": after}


@get("/api/visitors/{visitor_id:str}")
async def get_visitor(
    request: AppRequest, visitor_id: FromPath[str], visitors_people: NamedDependency[People]
) -> VisitorView:
    return await visitors_people.get(me(request), visitor_id)


@patch("/api/visitors/{visitor_id:str}")
async def update_visitor(
    request: AppRequest,
    visitor_id: FromPath[str],
    data: JSONBody[VisitorPatch],
    visitors_people: NamedDependency[People],
) -> VisitorView:
    return await visitors_people.update(me(request), visitor_id, data)


@delete("/api/visitors/{visitor_id:str}", status_code=204)
async def erase_visitor(
    request: AppRequest, visitor_id: FromPath[str], visitors_people: NamedDependency[People]
) -> None:
    await visitors_people.erase(me(request), visitor_id)


def _kind(name: str) -> Kind:
    return "photo" if name == "photo" else "id_document"


@put("/api/visitors/{visitor_id:str}/{kind:str}", status_code=204)
async def upload_file(
    request: AppRequest, visitor_id: FromPath[str], kind: FromPath[str], visitors_uploads: NamedDependency[Uploads]
) -> None:
    from bastion.visitors.errors import UploadNotFound

    if kind not in ("photo", "id-document"):
        raise UploadNotFound(f"No upload {kind!r}; photo or id-document.")
    await visitors_uploads.put(me(request), visitor_id, _kind(kind), await request.body())


@get("/api/visitors/{visitor_id:str}/{kind:str}", media_type="image/jpeg")
async def read_file(
    request: AppRequest, visitor_id: FromPath[str], kind: FromPath[str], visitors_uploads: NamedDependency[Uploads]
) -> Response[bytes]:
    from bastion.visitors.errors import UploadNotFound

    if kind not in ("photo", "id-document"):
        raise UploadNotFound(f"No upload {kind!r}; photo or id-document.")
    data = await visitors_uploads.get(me(request), visitor_id, _kind(kind))
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": "private, no-store"})


@post("/api/visits", status_code=201)
async def create_visit(
    request: AppRequest, data: JSONBody[NewVisit], visitors_visits: NamedDependency[Visits]
) -> VisitView:
    return await visitors_visits.create(me(request), data)


@get("/api/visits")
async def list_visits(
    request: AppRequest,
    visitors_visits: NamedDependency[Visits],
    cursor: FromQuery[str | None] = None,
    limit: Limit = 50,
    day: FromQuery[str | None] = None,
    status: FromQuery[str | None] = None,
    host_id: FromQuery[str | None] = None,
    site_id: FromQuery[str | None] = None,
) -> VisitPage:
    return await visitors_visits.page(
        me(request), cursor=cursor, limit=limit, day=day, status=status, host_id=host_id, site_id=site_id
    )


@get("/api/visits/{visit_id:str}")
async def get_visit(
    request: AppRequest, visit_id: FromPath[str], visitors_visits: NamedDependency[Visits]
) -> VisitView:
    return await visitors_visits.get(me(request), visit_id)


@post("/api/visits/{visit_id:str}/approve", status_code=200)
async def approve_visit(
    request: AppRequest, visit_id: FromPath[str], visitors_visits: NamedDependency[Visits]
) -> VisitView:
    return await visitors_visits.approve(me(request), visit_id)


@post("/api/visits/{visit_id:str}/reject", status_code=200)
async def reject_visit(
    request: AppRequest, visit_id: FromPath[str], visitors_visits: NamedDependency[Visits]
) -> VisitView:
    return await visitors_visits.reject(me(request), visit_id)


@post("/api/visits/{visit_id:str}/cancel", status_code=200)
async def cancel_visit(
    request: AppRequest, visit_id: FromPath[str], visitors_visits: NamedDependency[Visits]
) -> VisitView:
    return await visitors_visits.cancel(me(request), visit_id)


@post("/api/visits/{visit_id:str}/check-in", status_code=200)
async def check_in(
    request: AppRequest, visit_id: FromPath[str], data: JSONBody[PassScan], visitors_gate: NamedDependency[Gate]
) -> VisitView:
    return await visitors_gate.check_in(me(request), visit_id, data)


@post("/api/visits/{visit_id:str}/check-out", status_code=200)
async def check_out(
    request: AppRequest, visit_id: FromPath[str], data: JSONBody[PassScan], visitors_gate: NamedDependency[Gate]
) -> VisitView:
    return await visitors_gate.check_out(me(request), visit_id, data)


@get("/passes/{visit_id:str}/{code:str}", media_type="image/png")
async def pass_qr(
    visit_id: FromPath[str], code: FromPath[str], visitors_passes: NamedDependency[Passes]
) -> Response[bytes]:
    data = await visitors_passes.qr(visit_id, code)
    return Response(data, media_type="image/png", headers={"Cache-Control": "private, no-store"})


route_handlers: list[Any] = [
    pass_qr,
    create_site,
    my_sites,
    add_member,
    list_members,
    site_audit,
    create_visitor,
    list_visitors,
    get_visitor,
    update_visitor,
    erase_visitor,
    upload_file,
    read_file,
    create_visit,
    list_visits,
    get_visit,
    approve_visit,
    reject_visit,
    cancel_visit,
    check_in,
    check_out,
]
