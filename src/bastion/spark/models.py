"""The Spark KV table (one row per (app, collection, key), the value kept as the JSON text received), and the
hosted apps registered from the command line."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Boolean, DateTime, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from bastion.core.db import Base


class KvEntry(Base):
    __tablename__ = "spark_kv"

    # Sized so the primary key stays within PostgreSQL's B-tree entry limit (~2.7 kB) even for 512
    # four-byte characters: 64 + 64 + 512 characters.
    app: Mapped[str] = mapped_column(String(64), primary_key=True)
    collection: Mapped[str] = mapped_column(String(64), primary_key=True)
    """"" when the client gave none."""
    key: Mapped[str] = mapped_column(String(512), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class HostedApp(Base):
    """An app registered with ``bastion spark add``: served on ``host`` from the files in ``dist``."""

    __tablename__ = "spark_apps"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    host: Mapped[str] = mapped_column(String(253), unique=True)
    dist: Mapped[str] = mapped_column(Text)
    public: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
