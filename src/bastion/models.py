"""Imports every module's SQLAlchemy models, so Alembic and ``create_all`` see all tables."""

from __future__ import annotations

import importlib

MODEL_MODULES: tuple[str, ...] = (
    "bastion.identity.models",
    "bastion.secrets.models",
    "bastion.spark.models",
)


def import_all_models() -> None:
    for name in MODEL_MODULES:
        importlib.import_module(name)
