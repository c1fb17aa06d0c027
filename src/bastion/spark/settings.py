"""Settings of the Spark runtime (``BASTION_SPARK__<FIELD>``).

BASTION_SPARK__APP_NAME=my-app          # KV namespace of callers whose credential names no app
BASTION_SPARK__ALLOW_ANONYMOUS=true     # let signed-out browsers use the KV (development only)
BASTION_SPARK__APPS='[{"name": "notes", "dist": "/srv/notes/dist", "host": "notes.example.com"}]'
                                        # hosted apps (also ``bastion spark add``, kept in the database)
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints

AppName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$")]
HostName = Annotated[
    str,
    BeforeValidator(lambda v: v.strip().lower() if isinstance(v, str) else v),
    StringConstraints(
        max_length=253,
        pattern=r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$",
    ),
]
"""A host name without port (``notes.example.com``, ``notes.localhost``)."""


class HostedAppSettings(BaseModel):
    """A built Spark app served by Bastion on a host of its own (its files and its ``/_spark/*`` KV)."""

    model_config = ConfigDict(frozen=True)

    name: AppName
    """The app's KV namespace: every ``/_spark/*`` call on its host uses it, whoever the user is."""
    host: HostName
    dist: Path
    """The built app (Vite's ``dist/``, with ``index.html``)."""
    public: bool = False
    """Public: anonymous visitors may use the app (``spark.user()`` is ``null``). Private (the default, as
    on GitHub): a signed-out visitor is sent to the sign-in page first."""


class SparkSettings(BaseModel):
    model_config = ConfigDict(frozen=True)

    app_name: AppName = "default"
    """The KV namespace for users and for API keys that name no app (an API key's ``app`` wins)."""
    allow_anonymous: bool = False
    """Serve the KV to callers without a principal. Off: anyone could read and write the app's data."""
    max_value_bytes: int = Field(1_048_576, ge=1, le=16 * 1_048_576)
    """Largest value (its JSON text, UTF-8 bytes)."""
    max_key_chars: int = Field(512, ge=1, le=512)
    max_collection_chars: int = Field(64, ge=1, le=64)
    apps: list[HostedAppSettings] = []
    """Hosted apps from settings; ``bastion spark add`` keeps others in the database (settings win on a name
    or host given in both)."""
    apps_refresh_seconds: float = Field(5.0, gt=0, le=3600)
    """How often each worker re-reads the apps kept in the database."""
    list_page_size: int = Field(1000, ge=1, le=100_000)
    """``GET /_spark/kv`` and collections stream every key, reading this many rows at a time."""
