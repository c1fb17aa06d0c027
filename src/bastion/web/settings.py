"""Settings of the web page (``BASTION_WEB__<FIELD>``).

BASTION_WEB__ENABLED=false       # an API-only deployment: no page at / and /s/<id>
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class WebSettings(BaseModel):
    model_config = ConfigDict(frozen=True)

    enabled: bool = True
    title: str = Field("Bastion Secrets", min_length=1, max_length=60)
    """The name the pages show in their title and header."""
