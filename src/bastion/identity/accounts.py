"""Accounts: creation (with invites), passwords, administration, plans, and the first-run owner.

accounts = Accounts(platform.db, passwords=passwords, settings=settings.identity, sessions=sessions,
                    invalidate=bus.publish)
user = await accounts.create_user(email="ada@example.com", password="correct horse battery staple")
await accounts.update_user(None, user.id, plan="pro")    # None: the operator (CLI); cached principals follow
"""

from __future__ import annotations

import datetime as dt
import secrets
import sys
from typing import Any, cast

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bastion.core.db import Database
from bastion.core.errors import Forbidden
from bastion.core.passwords import Passwords
from bastion.core.principal import Principal
from bastion.core.text import clean_text
from bastion.identity import tokens
from bastion.identity.errors import EmailTaken, InvalidAccountData, InvalidCredentials, LoginTaken, UserNotFound
from bastion.identity.events import Invalidate, log
from bastion.identity.models import Invite, User, utcnow
from bastion.identity.schemas import AdminUserView, InviteOut
from bastion.identity.sessions import Sessions
from bastion.identity.settings import IdentitySettings
from bastion.identity.validation import login_from, look_alikes, normalise_email, normalise_login
from bastion.identity.views import Role, as_admin_view


class Accounts:
    def __init__(
        self,
        db: Database,
        *,
        passwords: Passwords,
        settings: IdentitySettings,
        sessions: Sessions,
        invalidate: Invalidate,
    ) -> None:
        self.db = db
        self.passwords = passwords
        self.settings = settings
        self.sessions = sessions
        self.invalidate = invalidate

    def check_password(self, password: str, email: str | None = None) -> None:
        minimum = self.settings.password_min_length
        if len(password) < minimum:
            raise InvalidAccountData("password", f"Use at least {minimum} characters.")
        if email is not None and password.strip().lower() == email:
            raise InvalidAccountData("password", "The password must not be the email address.")

    async def create_user(
        self,
        *,
        email: str,
        password: str | None = None,
        login: str | None = None,
        display_name: str | None = None,
        role: Role = "user",
        plan: str = "free",
        email_verified: bool = False,
        avatar_url: str | None = None,
        invite: str | None = None,
    ) -> User:
        """A new account; ``invite`` is claimed in the same transaction (a failed insert leaves it unused)."""
        address = normalise_email(email)
        if await self._any_email_exists(look_alikes(address)):
            raise InvalidAccountData("email", "This address looks the same as an existing account's; use another.")
        if password is not None:
            self.check_password(password, address)
        chosen = normalise_login(login) if login else None
        hashed = await self.passwords.hash(password) if password is not None else None
        name = clean_text(display_name or "", multiline=False).strip()[:128]
        for attempt in range(5):
            candidate = chosen or login_from(address.partition("@")[0])
            if chosen is None and attempt:
                candidate = f"{candidate[:34]}-{secrets.token_hex(2)}"
            user = User(
                id=secrets.token_hex(16),
                email=address,
                email_verified=email_verified,
                login=candidate,
                display_name=name or candidate,
                avatar_url=avatar_url[:512] if avatar_url else None,
                password_hash=hashed,
                role=role,
                plan=plan,
                disabled=False,
                created_at=utcnow(),
            )
            try:
                async with self.db.transaction() as session:
                    if invite is not None:
                        user.role = await self._claim_invite(session, invite, address, user.id)
                    session.add(user)
                return user
            except IntegrityError:
                if await self._email_exists(address):
                    raise EmailTaken("An account with this email already exists.") from None
                if chosen is not None:
                    raise LoginTaken("This login is taken; choose another.") from None
        raise LoginTaken("No free login could be found; choose one.")

    async def _any_email_exists(self, addresses: list[str]) -> bool:
        if not addresses:
            return False
        async with self.db.session() as session:
            return await session.scalar(select(User.id).where(User.email.in_(addresses)).limit(1)) is not None

    async def _email_exists(self, address: str) -> bool:
        async with self.db.session() as session:
            return await session.scalar(select(User.id).where(User.email == address)) is not None

    async def _claim_invite(self, session: AsyncSession, invite: str, address: str, user_id: str) -> Role:
        now = utcnow()
        claimed = await session.execute(
            update(Invite)
            .where(Invite.token_hash == tokens.digest(invite), Invite.used_at.is_(None), Invite.expires_at > now)
            .values(used_at=now, used_by=user_id)
            .returning(Invite.role, Invite.email)
        )
        row = claimed.one_or_none()
        if row is None or (row.email is not None and row.email != address):
            raise InvalidAccountData(
                "invite", "This invite is not valid (unknown, used, expired or for another address)."
            )
        return cast("Role", row.role)

    async def set_password_hash(self, user_id: str, hashed: str) -> None:
        """Store a hash as it is (a rehash on sign-in with stronger parameters: the sessions stay)."""
        async with self.db.transaction() as session:
            await session.execute(update(User).where(User.id == user_id).values(password_hash=hashed))

    async def set_password(self, user_id: str, password: str) -> None:
        """A new password; every session of the user ends (here and on every instance)."""
        user = await self.get_user(user_id)
        self.check_password(password, user.email)
        await self.set_password_hash(user_id, await self.passwords.hash(password))
        await self.sessions.revoke_user_sessions(user_id, reason="password")

    async def change_password(self, user_id: str, current: str, new: str) -> None:
        user = await self.get_user(user_id)
        if not await self.passwords.verify(user.password_hash, current):
            raise InvalidCredentials()
        await self.set_password(user_id, new)

    async def get_user(self, user_id: str) -> User:
        async with self.db.session() as session:
            user = await session.get(User, user_id)
        if user is None:
            raise UserNotFound("No such user.")
        return user

    async def find_user(self, email_or_id: str) -> User:
        """By email (as typed) or id: for the command line."""
        async with self.db.session() as session:
            user = await session.get(User, email_or_id)
            if user is None and "@" in email_or_id:
                user = await session.scalar(select(User).where(User.email == normalise_email(email_or_id)))
        if user is None:
            raise UserNotFound(f"No user {email_or_id!r}.")
        return user

    async def list_users(self, *, limit: int = 100, offset: int = 0) -> list[AdminUserView]:
        async with self.db.session() as session:
            rows = await session.scalars(select(User).order_by(User.created_at, User.id).limit(limit).offset(offset))
            return [as_admin_view(u) for u in rows]

    async def update_user(
        self,
        actor: Principal | None,
        user_id: str,
        *,
        role: Role | None = None,
        plan: str | None = None,
        disabled: bool | None = None,
    ) -> AdminUserView:
        """Role (owner only), plan and disabled (owner or admin). The owner cannot be demoted or disabled,
        and an admin cannot change another admin. ``actor=None`` is the command line (the operator)."""
        target = await self.get_user(user_id)
        if actor is not None:
            if role is not None and not actor.has_role("owner"):
                raise Forbidden("Only the owner changes roles.")
            if target.role == "owner" or (target.role == "admin" and not actor.has_role("owner")):
                raise Forbidden("You cannot change this account.")
        if target.role == "owner" and (role not in (None, "owner") or disabled):
            raise Forbidden("The owner account cannot be demoted or disabled.")
        if plan is not None and plan not in ("free", "pro"):
            raise InvalidAccountData("plan", "Unknown plan.")
        values: dict[str, Any] = {
            k: v for k, v in {"role": role, "plan": plan, "disabled": disabled}.items() if v is not None
        }
        if values:
            async with self.db.transaction() as session:
                await session.execute(update(User).where(User.id == user_id).values(**values))
            await self.invalidate([f"u:{user_id}"])
            log.info("account updated", user_id=user_id, fields=sorted(values))
        return as_admin_view(await self.get_user(user_id))

    async def set_plan(self, user_id: str, plan: str) -> None:
        await self.update_user(None, user_id, plan=plan)

    async def create_invite(self, actor_id: str | None, *, email: str | None, role: Role, days: int) -> InviteOut:
        token = tokens.new_opaque(tokens.INVITE_PREFIX)
        address = normalise_email(email) if email else None
        expires = utcnow() + dt.timedelta(days=days)
        async with self.db.transaction() as session:
            session.add(
                Invite(
                    token_hash=tokens.digest(token),
                    email=address,
                    role=role,
                    created_by=actor_id,
                    created_at=utcnow(),
                    expires_at=expires,
                )
            )
        return InviteOut(token=token, email=address, role=role, expires_at=expires)

    # -- the first run -----------------------------------------------------------------------------------

    async def ensure_owner(self, email: str | None = None) -> tuple[User, str] | None:
        """On an empty database: the owner account and its generated password; else None. Safe when several
        workers start at once (the unique email lets one of them win)."""
        async with self.db.session() as session:
            if await session.scalar(select(func.count()).select_from(User)):
                return None
        password = secrets.token_urlsafe(18)
        try:
            user = await self.create_user(
                email=email or self.settings.owner_email,
                password=password,
                login="owner",
                display_name="Owner",
                role="owner",
                email_verified=True,
            )
        except (EmailTaken, LoginTaken):
            return None
        return user, password

    async def bootstrap(self) -> None:
        """The owner on first start, its password shown once on stderr; a database that is down or not
        migrated is logged with what to run, and does not stop the worker."""
        try:
            created = await self.ensure_owner()
        except Exception as exc:  # a database that is down or not migrated must not stop the worker
            log.warning(
                "owner bootstrap skipped; run `bastion migrate`, then `bastion users create-owner`",
                error=type(exc).__name__,
            )
            return
        if created is not None:
            user, password = created
            print_credential(user.email, password)
            log.info("owner account created", user_id=user.id)


def print_credential(email: str, password: str) -> None:
    """Show a generated credential once, on stderr, never in the structured log (which is shipped and kept)."""
    sys.stderr.write(
        "\n=== Bastion owner account created ===\n"
        f"  email:    {email}\n"
        f"  password: {password}\n"
        "Shown once. Sign in with POST /auth/login, then change it (or `bastion users reset-password`).\n\n"
    )
    sys.stderr.flush()
