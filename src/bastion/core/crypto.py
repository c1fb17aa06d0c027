"""Encryption at rest: AES-256-GCM under per-item keys derived from rotating master keys.

    keyring = Keyring.from_settings(settings.crypto, data_dir)
    blob = keyring.encrypt(b"plaintext", context=b"secrets:abc123")
    keyring.decrypt(blob, context=b"secrets:abc123")  # -> b"plaintext"

Each ciphertext gets its own key, HKDF-SHA256(master, salt=16 random bytes, info=context), so no
two items share a key and a nonce is never reused under one. ``context`` is also the AEAD's
associated data: a blob moved to another record does not decrypt. The blob names the master key's
id, so keys rotate without re-encrypting: make a new key active and old blobs stay readable while
their key is listed. Layout (version 1)::

    0x01 | len(kid) (1 byte) | kid | salt (16) | nonce (12) | ciphertext+tag
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from bastion.core.settings import CryptoSettings

_VERSION = 1
GENERATED_KEY_FILE = "keys.json"


class DecryptionError(Exception):
    """The blob is corrupt, was encrypted under another context, or its key is not configured."""


@dataclass(frozen=True)
class Keyring:
    keys: dict[str, bytes]
    active: str
    generated: bool = False

    def __post_init__(self) -> None:
        if self.active not in self.keys:
            raise ValueError(f"active key {self.active!r} is not among the configured keys")
        for kid, key in self.keys.items():
            if len(key) != 32:
                raise ValueError(f"key {kid!r} must be 32 bytes (base64 of 32 random bytes)")
            if not kid or len(kid.encode()) > 64:
                raise ValueError("key ids must be 1-64 bytes")

    @classmethod
    def from_settings(cls, settings: CryptoSettings, data_dir: Path) -> Keyring:
        """The configured keys, or in development a key generated once into ``DATA_DIR/keys.json``."""
        if settings.keys:
            keys = {
                kid: base64.b64decode(value.get_secret_value(), validate=True) for kid, value in settings.keys.items()
            }
            active = settings.active_key_id or next(iter(keys))
            return cls(keys, active)
        path = data_dir / GENERATED_KEY_FILE
        if not path.exists():
            data_dir.mkdir(parents=True, exist_ok=True)
            payload = json.dumps({"active": "dev-1", "keys": {"dev-1": new_key()}})
            # Written to a private temporary file, then linked into place: several workers starting at
            # once agree on one key, and none reads a half-written file.
            temporary = data_dir / f".keys.{os.getpid()}.tmp"
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(payload)
            try:
                with contextlib.suppress(FileExistsError):  # another worker won the race: use its key
                    os.link(temporary, path)
            finally:
                temporary.unlink()
        stored = json.loads(path.read_text())
        return cls({k: base64.b64decode(v) for k, v in stored["keys"].items()}, stored["active"], generated=True)

    def _derive(self, master: bytes, salt: bytes, context: bytes) -> bytes:
        return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=context).derive(master)

    def encrypt(self, plaintext: bytes, *, context: bytes) -> bytes:
        kid = self.active.encode()
        salt, nonce = os.urandom(16), os.urandom(12)
        key = self._derive(self.keys[self.active], salt, context)
        sealed = AESGCM(key).encrypt(nonce, plaintext, context)
        return bytes([_VERSION, len(kid)]) + kid + salt + nonce + sealed

    def decrypt(self, blob: bytes, *, context: bytes) -> bytes:
        try:
            if blob[0] != _VERSION:
                raise DecryptionError("unknown ciphertext version")
            n = blob[1]
            kid = blob[2 : 2 + n].decode()
            salt, nonce, sealed = blob[2 + n : 18 + n], blob[18 + n : 30 + n], blob[30 + n :]
            if len(sealed) < 16:  # no room for the GCM tag; a cut nonce would make AESGCM raise ValueError
                raise DecryptionError("malformed ciphertext")
        except (IndexError, UnicodeDecodeError) as exc:
            raise DecryptionError("malformed ciphertext") from exc
        master = self.keys.get(kid)
        if master is None:
            raise DecryptionError(f"key {kid!r} is not configured")
        try:
            return AESGCM(self._derive(master, salt, context)).decrypt(nonce, sealed, context)
        except InvalidTag as exc:
            raise DecryptionError("ciphertext does not authenticate") from exc

    @staticmethod
    def key_id_of(blob: bytes) -> str:
        try:
            return blob[2 : 2 + blob[1]].decode()
        except (IndexError, UnicodeDecodeError) as exc:
            raise DecryptionError("malformed ciphertext") from exc


def new_key() -> str:
    """A fresh master key, base64-encoded, for ``BASTION_CRYPTO__KEYS``."""
    return base64.b64encode(os.urandom(32)).decode()
