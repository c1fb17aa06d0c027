"""Encryption at rest: the Keyring's AEAD round trip, context binding, tamper detection, rotation, and
the development key generated into the data dir."""

from __future__ import annotations

import base64
import json
import os
import stat

import pytest
from pydantic import SecretStr

from bastion.core.crypto import GENERATED_KEY_FILE, DecryptionError, Keyring, new_key
from bastion.core.settings import CryptoSettings

CONTEXT = b"secrets:abc123"


def _key() -> bytes:
    return os.urandom(32)


@pytest.fixture
def keyring() -> Keyring:
    return Keyring({"k1": _key()}, "k1")


def test_round_trip(keyring):
    """What is encrypted under a context decrypts to the same bytes under that context."""
    plaintext = b"the launch code is \x00\xff 1234"
    assert keyring.decrypt(keyring.encrypt(plaintext, context=CONTEXT), context=CONTEXT) == plaintext


def test_round_trip_of_empty_plaintext(keyring):
    """An empty plaintext round-trips too."""
    assert keyring.decrypt(keyring.encrypt(b"", context=CONTEXT), context=CONTEXT) == b""


def test_ciphertext_does_not_contain_the_plaintext(keyring):
    """The blob does not carry the plaintext in the clear."""
    plaintext = b"very-recognisable-plaintext"
    assert plaintext not in keyring.encrypt(plaintext, context=CONTEXT)


def test_another_context_does_not_decrypt(keyring):
    """A blob moved to another record (another context) fails with DecryptionError."""
    blob = keyring.encrypt(b"secret", context=b"secrets:one")
    with pytest.raises(DecryptionError):
        keyring.decrypt(blob, context=b"secrets:two")


def test_tampering_with_any_byte_is_detected(keyring):
    """Flipping any single byte of the blob, header included, makes decryption fail."""
    blob = keyring.encrypt(b"secret payload", context=CONTEXT)
    for index in range(len(blob)):
        tampered = bytearray(blob)
        tampered[index] ^= 0x01
        with pytest.raises(DecryptionError):
            keyring.decrypt(bytes(tampered), context=CONTEXT)


def test_truncated_blobs_are_rejected(keyring):
    """A blob cut short at any length fails with DecryptionError, not another exception."""
    blob = keyring.encrypt(b"secret payload", context=CONTEXT)
    for length in range(len(blob)):
        with pytest.raises(DecryptionError):
            keyring.decrypt(blob[:length], context=CONTEXT)


def test_unknown_version_is_rejected(keyring):
    """A blob with another format version byte fails with DecryptionError."""
    blob = keyring.encrypt(b"secret", context=CONTEXT)
    with pytest.raises(DecryptionError, match="version"):
        keyring.decrypt(b"\x02" + blob[1:], context=CONTEXT)


def test_two_encryptions_of_the_same_plaintext_differ(keyring):
    """Encrypting the same plaintext twice gives different blobs (fresh salt and nonce)."""
    first = keyring.encrypt(b"same", context=CONTEXT)
    second = keyring.encrypt(b"same", context=CONTEXT)
    assert first != second
    assert keyring.decrypt(first, context=CONTEXT) == keyring.decrypt(second, context=CONTEXT) == b"same"


def test_blob_names_the_active_key(keyring):
    """key_id_of reads the id of the master key a blob was made under."""
    assert Keyring.key_id_of(keyring.encrypt(b"x", context=CONTEXT)) == "k1"


def test_another_key_under_the_same_id_does_not_decrypt():
    """A blob does not decrypt under a different master key that happens to share its id."""
    blob = Keyring({"k1": _key()}, "k1").encrypt(b"secret", context=CONTEXT)
    with pytest.raises(DecryptionError):
        Keyring({"k1": _key()}, "k1").decrypt(blob, context=CONTEXT)


# --- rotation ----------------------------------------------------------------------------------


def test_old_blobs_decrypt_after_a_new_key_becomes_active():
    """Blobs made under key A still decrypt once B is active, as long as A is listed."""
    a, b = _key(), _key()
    blob = Keyring({"A": a}, "A").encrypt(b"old", context=CONTEXT)
    rotated = Keyring({"A": a, "B": b}, "B")
    assert rotated.decrypt(blob, context=CONTEXT) == b"old"


def test_new_blobs_use_the_new_active_key():
    """After rotation new blobs are made under the active key B."""
    rotated = Keyring({"A": _key(), "B": _key()}, "B")
    blob = rotated.encrypt(b"new", context=CONTEXT)
    assert Keyring.key_id_of(blob) == "B"
    assert rotated.decrypt(blob, context=CONTEXT) == b"new"


def test_old_blobs_fail_once_their_key_is_removed():
    """With key A no longer listed, its blobs fail with DecryptionError while B's still decrypt."""
    a, b = _key(), _key()
    old = Keyring({"A": a}, "A").encrypt(b"old", context=CONTEXT)
    new = Keyring({"A": a, "B": b}, "B").encrypt(b"new", context=CONTEXT)
    retired = Keyring({"B": b}, "B")
    with pytest.raises(DecryptionError, match="not configured"):
        retired.decrypt(old, context=CONTEXT)
    assert retired.decrypt(new, context=CONTEXT) == b"new"


# --- construction and settings -----------------------------------------------------------------


@pytest.mark.parametrize("length", [0, 16, 31, 33, 64])
def test_keys_must_be_32_bytes(length):
    """A master key of any length other than 32 bytes is refused."""
    with pytest.raises(ValueError, match="32 bytes"):
        Keyring({"k": os.urandom(length)}, "k")


def test_active_key_must_be_listed():
    """Naming an active key that is not among the keys is refused."""
    with pytest.raises(ValueError, match="active key"):
        Keyring({"k": _key()}, "other")


@pytest.mark.parametrize("kid", ["", "x" * 65])
def test_key_ids_must_be_1_to_64_bytes(kid):
    """An empty or overlong key id is refused."""
    with pytest.raises(ValueError, match="key ids"):
        Keyring({kid: _key()}, kid)


def test_from_settings_uses_the_configured_keys(tmp_path):
    """Configured keys are decoded from base64, the active id is honoured, and nothing is generated."""
    a, b = new_key(), new_key()
    settings = CryptoSettings(keys={"a": SecretStr(a), "b": SecretStr(b)}, active_key_id="b")
    keyring = Keyring.from_settings(settings, tmp_path / "data")
    assert keyring.active == "b" and not keyring.generated
    assert keyring.keys == {"a": base64.b64decode(a), "b": base64.b64decode(b)}
    assert not (tmp_path / "data").exists()


def test_from_settings_defaults_the_active_key_to_the_first(tmp_path):
    """Without active_key_id the first configured key is active."""
    settings = CryptoSettings(keys={"first": SecretStr(new_key()), "second": SecretStr(new_key())})
    assert Keyring.from_settings(settings, tmp_path).active == "first"


def test_from_settings_refuses_configured_keys_that_are_not_32_bytes(tmp_path):
    """A configured key that does not decode to 32 bytes is refused (by the settings themselves, so the error
    names BASTION_CRYPTO__KEYS before any keyring is built)."""
    with pytest.raises(ValueError, match="32 bytes"):
        Keyring.from_settings(
            CryptoSettings(keys={"short": SecretStr(base64.b64encode(os.urandom(16)).decode())}), tmp_path
        )


def test_from_settings_without_keys_generates_a_private_key_file(tmp_path):
    """With no keys configured a key is generated into DATA_DIR/keys.json, readable only by the owner."""
    data_dir = tmp_path / "data"
    keyring = Keyring.from_settings(CryptoSettings(), data_dir)
    path = data_dir / GENERATED_KEY_FILE
    assert keyring.generated
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    stored = json.loads(path.read_text())
    assert keyring.keys == {kid: base64.b64decode(v) for kid, v in stored["keys"].items()}
    assert keyring.active == stored["active"]
    assert [p.name for p in data_dir.iterdir()] == [GENERATED_KEY_FILE]  # no temporary file left


def test_from_settings_reuses_the_generated_key(tmp_path):
    """The next start reads the same generated key, so earlier blobs still decrypt."""
    first = Keyring.from_settings(CryptoSettings(), tmp_path)
    content = (tmp_path / GENERATED_KEY_FILE).read_text()
    blob = first.encrypt(b"kept", context=CONTEXT)
    second = Keyring.from_settings(CryptoSettings(), tmp_path)
    assert second.generated
    assert second.keys == first.keys
    assert (tmp_path / GENERATED_KEY_FILE).read_text() == content
    assert second.decrypt(blob, context=CONTEXT) == b"kept"


def test_new_key_is_base64_of_32_random_bytes():
    """new_key gives a fresh base64-encoded 32-byte key each call."""
    one, two = new_key(), new_key()
    assert len(base64.b64decode(one)) == 32
    assert one != two
