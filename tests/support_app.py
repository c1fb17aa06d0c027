"""An app factory for tests that run a real server: Bastion with the test routes of tests.support.

bastion serve --app tests.support_app:create
"""

from __future__ import annotations

from bastion.app import Bastion, create_app
from tests.support import routes_module


def create() -> Bastion:
    return create_app(extra_modules=[routes_module])
