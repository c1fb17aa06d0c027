"""Bastion with the notes module: the root settings get its field, the list gets its line."""

from __future__ import annotations

from bastion.modules import MODULES
from bastion.settings import Settings
from tests.modules.notes.module import NOTES
from tests.modules.notes.settings import NotesSettings


class NotesAppSettings(Settings):
    notes: NotesSettings = NotesSettings()


APP_MODULES = (*MODULES, NOTES)
