"""Settings of the notes module (``BASTION_NOTES__<FIELD>``)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from bastion.core.settings import Problem


class NotesSettings(BaseModel):
    model_config = ConfigDict(frozen=True)

    max_chars: int = Field(280, ge=1, le=10_000)
    """The longest note."""
    keep_days: int = Field(30, ge=1)
    """Notes older than this are purged."""

    def problems(self, production: bool) -> list[Problem]:
        """A short retention is fine while developing; in production it would lose notes users expect to keep."""
        if production and self.keep_days < 7:
            return [Problem("error", "BASTION_NOTES__KEEP_DAYS", "keep notes at least 7 days in production")]
        return []
