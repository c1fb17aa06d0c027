"""Cleaning text before it is stored: one helper every module uses for user-supplied strings."""

from __future__ import annotations

import re
import unicodedata

# C0 and C1 control characters, DEL, and the Unicode bidi overrides/isolates used to disguise text
# ("Trojan Source"), except tab, line feed and carriage return.
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_CONTROL_SINGLE_LINE = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def clean_text(value: str, *, multiline: bool = True, normalize: bool = True) -> str:
    """``value`` without control characters (tab and newlines kept when ``multiline``), NFC-normalised."""
    pattern = _CONTROL if multiline else _CONTROL_SINGLE_LINE
    cleaned = pattern.sub("", value)
    return unicodedata.normalize("NFC", cleaned) if normalize else cleaned


def has_control_chars(value: str, *, multiline: bool = False) -> bool:
    return bool((_CONTROL if multiline else _CONTROL_SINGLE_LINE).search(value))
