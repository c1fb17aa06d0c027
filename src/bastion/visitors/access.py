"""Site roles: who may do what at which site, read from ``visitors_member`` on each call.

A platform admin (identity role ``admin``) may create sites; everything else is decided by the caller's
roles at the site the object belongs to. An object outside the caller's reach is "not found" (404), never
"forbidden": a host cannot learn that another host's visit exists.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import sqlalchemy as sa

from bastion.visitors.models import MemberRow

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

ROLES = ("host", "guard", "admin")


@dataclass(frozen=True, slots=True)
class Caller:
    """The account calling, with its roles by site."""

    account_id: str
    sites: dict[str, frozenset[str]]

    def roles_at(self, site_id: str) -> frozenset[str]:
        return self.sites.get(site_id, frozenset())

    def has(self, site_id: str, *roles: str) -> bool:
        return bool(self.roles_at(site_id).intersection(roles))

    def sites_with(self, *roles: str) -> list[str]:
        return sorted(site for site, held in self.sites.items() if held.intersection(roles))


async def caller_of(conn: AsyncConnection, account_id: str) -> Caller:
    rows = (
        await conn.execute(sa.select(MemberRow.site_id, MemberRow.role).where(MemberRow.account_id == account_id))
    ).all()
    sites: dict[str, set[str]] = {}
    for site_id, role in rows:
        sites.setdefault(site_id, set()).add(role)
    return Caller(account_id, {site: frozenset(held) for site, held in sites.items()})
