"""The root settings: the core's, plus one field per module (``BASTION_<MODULE>__<FIELD>``)."""

from __future__ import annotations

from bastion.ai.settings import AiSettings
from bastion.core.settings import CoreSettings, Problem
from bastion.identity.settings import IdentitySettings
from bastion.secrets.settings import SecretsSettings
from bastion.spark.settings import SparkSettings
from bastion.web.settings import WebSettings


class Settings(CoreSettings):
    """Everything Bastion reads from its environment; see docs/operations.md."""

    identity: IdentitySettings = IdentitySettings()
    secrets: SecretsSettings = SecretsSettings()
    ai: AiSettings = AiSettings()
    spark: SparkSettings = SparkSettings()
    web: WebSettings = WebSettings()

    def problems(self) -> list[Problem]:
        return [*super().problems(), *self.identity.problems(self.is_production)]
