"""The Spark runtime's API shapes, exactly as the ``@github/spark`` client reads and sends them."""

from __future__ import annotations

from typing import Annotated

import msgspec


class SparkUser(msgspec.Struct):
    """``GET /_spark/user``: the client's ``spark.user()`` type (``id`` is a string)."""

    avatarUrl: str | None  # camelCase: the client's field names
    email: str | None
    id: str
    isOwner: bool
    login: str


class Loaded(msgspec.Struct):
    """``POST /_spark/loaded``: sent once per page load by the client SDK."""

    url: Annotated[str, msgspec.Meta(max_length=2048)] = ""
    load_ms: Annotated[float, msgspec.Meta(ge=0, le=86_400_000)] = 0.0
