"""Key files, HKDF sub-keys and the keyed ChaCha20 noise (noiseveil.crypto.keys)."""

from __future__ import annotations

import hashlib
import hmac
import os
import stat
import warnings
from pathlib import Path

import numpy as np
import pytest

from noiseveil.crypto.keys import (
    KEY_BYTES,
    NONCE_BYTES,
    KeyFileError,
    SecretKey,
    keyed_pad,
    keyed_uniform,
    new_nonce,
)

FIXED = SecretKey(bytes(range(32)))
OTHER = SecretKey(bytes(range(1, 33)))
NONCE = bytes(16)


# --- key files ---------------------------------------------------------------------------------


def test_save_writes_mode_0600_and_header(tmp_path: Path, key: SecretKey) -> None:
    path = tmp_path / "my.key"
    assert key.save(path) == path
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text() == f"noiseveil-key-v1\n{key.material.hex()}\n"


def test_save_refuses_to_overwrite(tmp_path: Path, key: SecretKey) -> None:
    path = tmp_path / "my.key"
    key.save(path)
    before = path.read_bytes()
    with pytest.raises(KeyFileError, match="exists") as info:
        SecretKey.generate().save(path)
    assert str(path) in str(info.value)
    assert path.read_bytes() == before
    assert SecretKey.load(path).material == key.material


def test_save_into_missing_folder_is_key_file_error(tmp_path: Path, key: SecretKey) -> None:
    path = tmp_path / "no" / "such" / "dir" / "k.key"
    with pytest.raises(KeyFileError, match="cannot create") as info:
        key.save(path)
    assert str(path) in str(info.value)


def test_load_round_trips_without_warning(tmp_path: Path, key: SecretKey) -> None:
    path = key.save(tmp_path / "k.key")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a 0600 file must not warn
        loaded = SecretKey.load(path)
    assert loaded == key
    assert loaded.material == key.material
    assert loaded.key_id == key.key_id


def test_load_warns_for_group_readable_file(tmp_path: Path, key: SecretKey) -> None:
    path = key.save(tmp_path / "k.key")
    os.chmod(path, 0o644)
    with pytest.warns(UserWarning, match="readable by other users"):
        assert SecretKey.load(path) == key


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "not a noiseveil key file"),
        (b"hello world, this is not a key\n", "not a noiseveil key file"),
        (b"noiseveil-key-v2\n" + b"00" * 32 + b"\n", "not a noiseveil key file"),
        (b"noiseveil-key-v1\n", "not a noiseveil key file"),
        (b"noiseveil-key-v1\n" + b"zz" * 32 + b"\n", "not hexadecimal"),
        (b"noiseveil-key-v1\n" + b"00" * 31 + b"\n", "wrong length"),
        (b"noiseveil-key-v1\n" + b"00" * 33 + b"\n", "wrong length"),
        (b"noiseveil-key-v1\n" + b"0" * 63 + b"\n", "not hexadecimal"),
        (b"\xff\xfe\x00binary\x80\x81", "not a noiseveil key file"),
    ],
)
def test_load_rejects_garbage(tmp_path: Path, content: bytes, reason: str) -> None:
    path = tmp_path / "bad.key"
    path.write_bytes(content)
    os.chmod(path, 0o600)
    with pytest.raises(KeyFileError) as info:
        SecretKey.load(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ")
    assert reason in message
    assert "\n" not in message


def test_load_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.key"
    with pytest.raises(KeyFileError, match="not found") as info:
        SecretKey.load(path)
    assert str(info.value) == f"{path}: key file not found"


def test_load_unreadable_path(tmp_path: Path) -> None:
    # A folder cannot be read as a file, even by root (chmod 000 would not stop root).
    path = tmp_path / "a-folder.key"
    path.mkdir()
    with pytest.raises(KeyFileError, match="cannot read key file") as info:
        SecretKey.load(path)
    assert str(info.value).startswith(f"{path}: ")


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root reads mode-000 files")
def test_load_permission_denied(tmp_path: Path, key: SecretKey) -> None:
    path = key.save(tmp_path / "k.key")
    os.chmod(path, 0)
    with pytest.raises(KeyFileError, match="cannot read key file") as info:
        SecretKey.load(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("length", [0, 16, 31, 33, 64])
def test_secret_key_requires_32_bytes(length: int) -> None:
    with pytest.raises(KeyFileError, match=f"got {length}"):
        SecretKey(bytes(length))


def test_generate_is_random() -> None:
    a, b = SecretKey.generate(), SecretKey.generate()
    assert len(a.material) == KEY_BYTES
    assert a.material != b.material
    assert a.key_id != b.key_id


def test_repr_hides_material() -> None:
    key = SecretKey(bytes(range(32)))
    text = repr(key) + str(key) + f"{key!r}"
    assert key.material.hex() not in text
    assert key.material.hex()[:8] not in text
    assert repr(key) == f"SecretKey(id={key.key_id})"


def test_key_id_is_8_hex_digits_and_not_the_key() -> None:
    key_id = FIXED.key_id
    assert len(key_id) == 8
    int(key_id, 16)
    assert key_id == FIXED.key_id
    assert key_id not in FIXED.material.hex()
    assert key_id != OTHER.key_id


# --- sub-keys, MAC -------------------------------------------------------------------------------


def test_derive_separates_uses_salts_and_keys() -> None:
    a = FIXED.derive("noiseveil/a")
    assert len(a) == 32
    assert a == FIXED.derive("noiseveil/a")
    assert a != FIXED.derive("noiseveil/b")
    assert a != FIXED.derive("noiseveil/a", salt=NONCE + b"\x01")
    assert FIXED.derive("noiseveil/a", salt=b"\x01" * 16) != FIXED.derive("noiseveil/a", salt=b"\x02" * 16)
    assert a != OTHER.derive("noiseveil/a")
    assert a != FIXED.material
    assert len(FIXED.derive("noiseveil/a", length=4)) == 4
    assert FIXED.derive("noiseveil/mac") != FIXED.derive("noiseveil/key-id", length=32)


def test_mac_and_verify() -> None:
    tag = FIXED.mac(b"message")
    assert len(tag) == 32
    assert FIXED.verify(b"message", tag)
    assert not FIXED.verify(b"messagE", tag)
    assert not OTHER.verify(b"message", tag)
    assert not FIXED.verify(b"message", tag[:-1] + bytes([tag[-1] ^ 1]))
    assert not FIXED.verify(b"message", b"")
    # in pieces, the tag of their concatenation: the HMAC-SHA256 of the whole message
    assert FIXED.mac(b"mes", memoryview(b"sage")) == tag == FIXED.mac(b"", b"message", b"")
    assert FIXED.verify((b"me", b"ssage"), tag) and not FIXED.verify((b"message", b"!"), tag)
    expected = hmac.new(FIXED.derive("noiseveil/mac"), b"message", hashlib.sha256).digest()
    assert tag == expected


def test_a_ciphertext_is_sealed_over_its_canonical_bytes_without_copying_the_pixels() -> None:
    from noiseveil.io.png import Ciphertext

    pixels = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    ct = Ciphertext(pixels, "ric-lossless", "model", FIXED.key_id, {"nonce": "00"}).seal(FIXED)
    assert ct.tag == FIXED.mac(ct.signed_bytes())
    header, image = ct.signed_parts()
    assert image.obj is pixels or np.shares_memory(np.asarray(image), pixels)
    ct.verify(FIXED)
    transposed = Ciphertext(pixels.transpose(1, 0, 2), "ric-lossless", "model", FIXED.key_id, {"nonce": "00"})
    assert transposed.seal(FIXED).tag == FIXED.mac(transposed.signed_bytes())  # not contiguous: copied once


def test_keyed_pad() -> None:
    pad = keyed_pad(FIXED, NONCE, "ric/label", 2)
    assert len(pad) == 2
    assert pad == keyed_pad(FIXED, NONCE, "ric/label", 2)
    assert keyed_pad(FIXED, b"\x01" * 16, "ric/label", 8) != keyed_pad(FIXED, NONCE, "ric/label", 8)


# --- nonces and keyed noise ----------------------------------------------------------------------


def test_new_nonce() -> None:
    nonces = {new_nonce() for _ in range(1000)}
    assert len(nonces) == 1000
    assert all(isinstance(n, bytes) and len(n) == NONCE_BYTES == 16 for n in nonces)


def test_keyed_uniform_is_deterministic() -> None:
    a = keyed_uniform(FIXED, NONCE, "ric/noise", (3, 5, 7))
    b = keyed_uniform(SecretKey(bytes(range(32))), bytes(16), "ric/noise", (3, 5, 7))
    assert a.dtype == np.float32
    assert a.shape == (3, 5, 7)
    np.testing.assert_array_equal(a, b)


def test_keyed_uniform_prefix_property() -> None:
    # A counter-mode stream: a bigger draw starts with the smaller one.
    small = keyed_uniform(FIXED, NONCE, "u", (10,))
    big = keyed_uniform(FIXED, NONCE, "u", (2, 10))
    np.testing.assert_array_equal(big[0], small)


@pytest.mark.parametrize(
    ("key", "nonce", "use"),
    [(FIXED, b"\x01" + bytes(15), "ric/noise"), (OTHER, NONCE, "ric/noise"), (FIXED, NONCE, "ric/other")],
)
def test_keyed_uniform_differs(key: SecretKey, nonce: bytes, use: str) -> None:
    base = keyed_uniform(FIXED, NONCE, "ric/noise", (1000,))
    other = keyed_uniform(key, nonce, use, (1000,))
    assert not np.array_equal(base, other)
    assert np.mean(base == other) < 0.01  # unrelated streams, not a shifted copy


def test_keyed_uniform_statistics() -> None:
    x = keyed_uniform(FIXED, NONCE, "ric/noise", (100_000,))
    assert x.min() >= 0.0
    assert x.max() < 1.0
    # mean 1/2 and std 1/sqrt(12) = 0.2887; standard errors 0.0009 and 0.0005
    assert abs(float(x.mean()) - 0.5) < 0.005
    assert abs(float(x.std()) - 12**-0.5) < 0.003
    # every value sits on the 2^-24 grid (24 bits of keystream each)
    np.testing.assert_array_equal(x * 2**24, np.floor(x * 2**24))
    hist, _ = np.histogram(x, bins=10, range=(0.0, 1.0))
    assert hist.min() > 9_500 and hist.max() < 10_500
    assert len(np.unique(x)) > 99_000
