"""The modules this build of Bastion serves, in order: the one list (Django's ``INSTALLED_APPS``).

Everything that depends on which modules exist reads it: the app (routes, route groups, jobs, checks), the
CLI (each module's commands), Alembic (each module's models and migration branch), the rate-limit tier
table and ``check-config``. A module listed later may ``require`` the services of those before it.

It lives here rather than in ``app.py`` because the CLI reads it too: descriptors are cheap to import, and
``bastion.app`` brings Litestar and SQLAlchemy (``import bastion.app`` 4.5 s and 96 MB of resident memory,
``import bastion.cli`` 0.8 s and 42 MB, measured with ``/usr/bin/time`` on 2026-12-03).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bastion.ai.module import MODULE as AI
from bastion.billing.module import MODULE as BILLING
from bastion.identity.module import MODULE as IDENTITY
from bastion.messaging.module import MODULE as MESSAGING
from bastion.secrets.module import MODULE as SECRETS
from bastion.spark.module import MODULE as SPARK
from bastion.visitors.module import MODULE as VISITORS
from bastion.web.module import MODULE as WEB
from bastion.workflows.module import MODULE as WORKFLOWS

if TYPE_CHECKING:
    from bastion.core.module import Module
    from bastion.settings import Settings

MODULES: tuple[Module[Settings], ...] = (IDENTITY, SECRETS, AI, SPARK, WEB, MESSAGING, VISITORS, BILLING, WORKFLOWS)
