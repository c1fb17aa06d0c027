"""The root settings: the core's, plus one field per module (``BASTION_<MODULE>__<FIELD>``).

Each module listed in :mod:`bastion.modules` has its field here, named as the module and typed with its
descriptor's ``settings`` (``tests/test_architecture.py`` checks both). Configuration problems of the whole
are :func:`bastion.core.module.check_config` of these settings and the list.
"""

from __future__ import annotations

from bastion.ai.settings import AiSettings
from bastion.billing.settings import BillingSettings
from bastion.core.settings import CoreSettings
from bastion.identity.settings import IdentitySettings
from bastion.messaging.settings import MessagingSettings
from bastion.secrets.settings import SecretsSettings
from bastion.spark.settings import SparkSettings
from bastion.visitors.settings import VisitorsSettings
from bastion.web.settings import WebSettings
from bastion.workflows.settings import WorkflowsSettings


class Settings(CoreSettings):
    """Everything Bastion reads from its environment; see docs/operations.md."""

    identity: IdentitySettings = IdentitySettings()
    secrets: SecretsSettings = SecretsSettings()
    ai: AiSettings = AiSettings()
    spark: SparkSettings = SparkSettings()
    web: WebSettings = WebSettings()
    messaging: MessagingSettings = MessagingSettings()
    visitors: VisitorsSettings = VisitorsSettings()
    billing: BillingSettings = BillingSettings()
    workflows: WorkflowsSettings = WorkflowsSettings()
