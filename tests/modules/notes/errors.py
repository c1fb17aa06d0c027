"""Errors of the notes module.

Our exception hierarchy (core classes in brackets)::

    [ValidationFailed]  NoteTooLong   422 NOTE_TOO_LONG
"""

from __future__ import annotations

from bastion.core.errors import ValidationFailed


class NoteTooLong(ValidationFailed):
    code, title = "NOTE_TOO_LONG", "The note is too long"
