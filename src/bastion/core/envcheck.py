"""What the environment says that the settings do not read: misspelled ``BASTION_*`` variables, and one-line
errors for values that do not parse.

    unknown_variables(Settings, os.environ)   # ["BASTION_DATABSE_URL"]: named by check-config and at start-up
    explain(exc, Settings)                    # ["BASTION_CRYPTO__KEYS: expected ..."] for a settings error

pydantic-settings ignores a variable no field reads (``extra="ignore"``: the environment holds much else), so
``BASTION_DATABSE_URL`` would be dropped in silence and the app would run on SQLite. The known names are the
settings model's own fields, walked through nested models (``BASTION_AI__MAX_TOKENS``); below a mapping or a
model that allows extra keys (``BASTION_RATE_LIMITS__<TIER>``, ``BASTION_AI__PROVIDERS__<NAME>__…``) any name
is accepted. ``BASTION_TEST_*`` belongs to the test suite.
"""

from __future__ import annotations

import json
import re
import types
import typing
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ValidationError

__all__ = ["explain", "unknown_variables"]

PREFIX = "BASTION_"
_IGNORED_PREFIXES = ("BASTION_TEST_",)
_FIELD_IN_ERROR = re.compile(r'error parsing value for field "(\w+)"')


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model an annotation names (through ``X | None`` and ``Annotated``), or None."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType, typing.Annotated):
        for arg in typing.get_args(annotation):
            found = _model_of(arg)
            if found is not None:
                return found
    return None


def _known(model: type[BaseModel], parts: list[str]) -> bool:
    """Whether the ``__``-separated ``parts`` (lower case) name a field of ``model`` (or lie below an open one)."""
    if not parts:
        return True
    field = model.model_fields.get(parts[0])
    if field is None:
        return model.model_config.get("extra") == "allow" and len(parts) == 1
    if len(parts) == 1:
        return True
    nested = _model_of(field.annotation)
    if nested is None:
        return True  # a mapping or list: its keys are data (a tier, a provider's name)
    return _known(nested, parts[1:])


def unknown_variables(settings_type: type[BaseModel], environ: Mapping[str, str]) -> list[str]:
    """The ``BASTION_*`` variables in ``environ`` that no setting reads, sorted."""
    return sorted(
        name
        for name in environ
        if name.startswith(PREFIX)
        and not name.startswith(_IGNORED_PREFIXES)
        and not _known(settings_type, name[len(PREFIX) :].lower().split("__"))
    )


def _expected(settings_type: type[BaseModel], path: list[str]) -> str:
    """A hint at the expected form of the setting at ``path``, from its annotation."""
    model: type[BaseModel] | None = settings_type
    annotation: Any = None
    for part in path:
        if model is None or part not in model.model_fields:
            return ""
        annotation = model.model_fields[part].annotation
        model = _model_of(annotation)
    if model is not None:
        fields = ", ".join(f'"{name}": …' for name in list(model.model_fields)[:3])
        return f"JSON like {{{fields}}}, or one variable per field (BASTION_{'__'.join(path).upper()}__<FIELD>)"
    text = str(annotation)
    if "dict" in text and "list" in text:
        return 'JSON like {"name": ["a", "b"]}'
    if "dict" in text:
        return 'JSON like {"name": "value"}'
    if "list" in text:
        return 'JSON like ["a", "b"] (or a comma-separated list where the setting says so)'
    return ""


def explain(exc: Exception, settings_type: type[BaseModel], environ: Mapping[str, str] | None = None) -> list[str]:
    """One line per problem in ``exc`` (a pydantic ``ValidationError`` or pydantic-settings ``SettingsError``):
    the variable, what is wrong, and the expected form where one can be said."""
    lines: list[str] = []
    if isinstance(exc, ValidationError):
        for error in exc.errors():
            path = [str(part) for part in error["loc"] if not isinstance(part, int)]
            hint = _expected(settings_type, path[:1]) if error["type"].startswith(("dict_", "model_")) else ""
            name = PREFIX + "__".join(path).upper()
            lines.append(f"{name}: {error['msg']}" + (f"; expected {hint}" if hint else ""))
        return lines
    found = _FIELD_IN_ERROR.search(str(exc))
    field = found.group(1) if found else ""
    top = PREFIX + field.upper()
    # pydantic-settings names only the top-level field; the variables set at or below it are the suspects
    suspects = sorted(n for n in (environ or {}) if field and (n == top or n.startswith(top + "__")))
    for name in suspects:
        hint = _expected(settings_type, name[len(PREFIX) :].lower().split("__"))
        if hint and not _is_json((environ or {})[name]):
            lines.append(f"{name}: the value does not parse; expected {hint}")
    return lines or [f"{top}: the value does not parse" + (f"; expected {_expected(settings_type, [field])}")]


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True
