"""Settings of the Spark runtime (``BASTION_SPARK__<FIELD>``).

BASTION_SPARK__APP_NAME=my-app          # KV namespace of callers whose credential names no app
BASTION_SPARK__ALLOW_ANONYMOUS=true     # let signed-out browsers use the KV (development only)
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

AppName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$")]


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
    max_keys_listed: int = Field(10_000, ge=1)
    """``GET /_spark/kv`` lists at most this many keys (in key order)."""
