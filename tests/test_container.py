"""The authenticated ciphertext (io.png.Ciphertext) and its PNG file."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from noiseveil.crypto.keys import SecretKey
from noiseveil.data import read_image
from noiseveil.exceptions import AuthenticationError
from noiseveil.io.png import (
    FORMAT_VERSION,
    Ciphertext,
    CiphertextFileError,
    read_ciphertext,
    write_ciphertext,
    write_image,
)

FIELDS = {
    "nonce": "00112233445566778899aabbccddeeff",
    "lambda": "0.8",
    "classifier": "test-cls",
    "target": "1a2b",
    "nae_steps": "3",
}


def make_ct(key: SecretKey, channels: int = 1, h: int = 28, w: int = 28, seed: int = 0) -> Ciphertext:
    pixels = np.random.default_rng(seed).integers(0, 256, (h, w, channels), dtype=np.uint8)
    return Ciphertext(pixels, "ric", "test-ric", key.key_id, dict(FIELDS)).seal(key)


def save_png(path: Path, pixels: np.ndarray, text: dict[str, str], mode: str | None = None) -> None:
    info = PngImagePlugin.PngInfo()
    for k, v in text.items():
        info.add_text(k, v)
    image = Image.fromarray(pixels[..., 0] if pixels.ndim == 3 and pixels.shape[2] == 1 else pixels)
    if mode is not None:
        image = image.convert(mode)
    image.save(path, format="PNG", pnginfo=info)


def png_text(ct: Ciphertext) -> dict[str, str]:
    return {"noiseveil:" + k: v for k, v in ct.header().items()} | {"noiseveil:tag": ct.tag.hex()}


# --- the PNG file --------------------------------------------------------------------------------


@pytest.mark.parametrize(("channels", "mode"), [(1, "L"), (3, "RGB")])
def test_ciphertext_is_an_ordinary_png(tmp_path: Path, key: SecretKey, channels: int, mode: str) -> None:
    ct = make_ct(key, channels, h=20, w=30)
    path = write_ciphertext(tmp_path / "c.png", ct)
    assert path == tmp_path / "c.png"
    assert path.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    with Image.open(path) as image:
        image.load()
        assert image.format == "PNG"
        assert image.mode == mode
        assert image.size == (30, 20)  # (W, H)
        np.testing.assert_array_equal(np.asarray(image).reshape(20, 30, channels), ct.pixels)
        assert image.text == png_text(ct)


@pytest.mark.parametrize("channels", [1, 3])
def test_read_round_trips(tmp_path: Path, key: SecretKey, channels: int) -> None:
    ct = make_ct(key, channels)
    back = read_ciphertext(write_ciphertext(tmp_path / "c.png", ct))
    assert back.pixels.dtype == np.uint8
    assert back.pixels.shape == (28, 28, channels)
    np.testing.assert_array_equal(back.pixels, ct.pixels)
    assert back.scheme == "ric"
    assert back.model_id == "test-ric"
    assert back.key_id == key.key_id
    assert back.version == FORMAT_VERSION
    assert back.fields == FIELDS
    assert back.tag == ct.tag and len(back.tag) == 32
    assert back.signed_bytes() == ct.signed_bytes()
    back.verify(key)


def test_write_refuses_to_overwrite(tmp_path: Path, key: SecretKey) -> None:
    path = write_ciphertext(tmp_path / "c.png", make_ct(key, seed=1))
    before = path.read_bytes()
    with pytest.raises(CiphertextFileError, match="exists; refusing to overwrite") as info:
        write_ciphertext(path, make_ct(key, seed=2))
    assert str(path) in str(info.value)
    assert path.read_bytes() == before


@pytest.mark.parametrize("unnamed", [True, False], ids=["O_TMPFILE", "named temporary"])
def test_write_image_refuses_to_overwrite_any_file(tmp_path: Path, monkeypatch, unnamed: bool) -> None:
    """Both ways of writing (an unnamed temporary where Linux allows, a named one elsewhere)
    make missing folders, refuse an existing file and leave no temporary behind."""
    import noiseveil.io.png as png

    monkeypatch.setitem(png._unnamed_files, "supported", unnamed and png._O_TMPFILE is not None)
    image = np.arange(48, dtype=np.uint8).reshape(4, 4, 3)
    written = write_image(tmp_path / "new" / "folder" / "a.png", image)
    assert np.array_equal(read_image(written), image)
    path = tmp_path / "precious.png"
    path.write_bytes(b"do not touch")
    with pytest.raises(CiphertextFileError, match="exists"):
        write_image(path, np.zeros((4, 4, 1), np.uint8))
    assert path.read_bytes() == b"do not touch"
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a.png", "folder", "new", "precious.png"]
    assert png._unnamed_files["supported"] == (unnamed and png._O_TMPFILE is not None)  # no fallback


# --- authentication ------------------------------------------------------------------------------


def test_verify_passes_with_the_right_key(key: SecretKey) -> None:
    ct = make_ct(key)
    ct.verify(key)
    ct.verify(SecretKey(key.material))  # same material, another object


def test_verify_rejects_another_key(key: SecretKey) -> None:
    other = SecretKey.generate()
    with pytest.raises(AuthenticationError, match="wrong key") as info:
        make_ct(key).verify(other)
    assert key.key_id in str(info.value) and other.key_id in str(info.value)


def test_verify_rejects_forged_key_id(key: SecretKey) -> None:
    other = SecretKey.generate()
    ct = make_ct(key)
    ct.key_id = other.key_id  # claims to be another key's: the tag still does not match
    with pytest.raises(AuthenticationError, match="authentication failed"):
        ct.verify(other)


@pytest.mark.parametrize("channels", [1, 3])
def test_verify_rejects_one_flipped_pixel(key: SecretKey, channels: int) -> None:
    ct = make_ct(key, channels)
    ct.pixels = ct.pixels.copy()
    ct.pixels[27, 13, channels - 1] ^= 1
    with pytest.raises(AuthenticationError, match="modified"):
        ct.verify(key)


def test_verify_rejects_reshaped_pixels(key: SecretKey) -> None:
    ct = make_ct(key, h=4, w=6)
    ct.pixels = ct.pixels.reshape(6, 4, 1)  # same bytes, other shape
    with pytest.raises(AuthenticationError):
        ct.verify(key)


@pytest.mark.parametrize(
    "change",
    [
        {"fields": {**FIELDS, "nonce": "f0112233445566778899aabbccddeeff"}},
        {"fields": {**FIELDS, "lambda": "0.7"}},
        {"fields": {**FIELDS, "target": "1a2c"}},
        {"fields": {**FIELDS, "extra": "1"}},
        {"fields": {k: v for k, v in FIELDS.items() if k != "nae_steps"}},
        {"model_id": "other-ric"},
        {"scheme": "etc"},
        {"version": "3"},
        {"tag": b""},
        {"tag": bytes(32)},
    ],
    ids=[
        "nonce",
        "lambda",
        "target",
        "added-field",
        "removed-field",
        "model",
        "scheme",
        "version",
        "no-tag",
        "zero-tag",
    ],
)
def test_verify_rejects_modified_metadata(key: SecretKey, change: dict) -> None:
    ct = dataclasses.replace(make_ct(key), **change)
    with pytest.raises(AuthenticationError, match="authentication failed"):
        ct.verify(key)


def test_tampered_file_is_rejected(tmp_path: Path, key: SecretKey) -> None:
    ct = make_ct(key)
    pixels = ct.pixels.copy()
    pixels[0, 0, 0] ^= 0x80
    save_png(tmp_path / "t.png", pixels, png_text(ct))  # same metadata and tag, one pixel changed
    back = read_ciphertext(tmp_path / "t.png")
    assert back.tag == ct.tag
    with pytest.raises(AuthenticationError):
        back.verify(key)


def test_file_with_changed_nonce_is_rejected(tmp_path: Path, key: SecretKey) -> None:
    ct = make_ct(key)
    text = png_text(ct) | {"noiseveil:f.nonce": "ff" * 16}
    save_png(tmp_path / "t.png", ct.pixels, text)
    with pytest.raises(AuthenticationError):
        read_ciphertext(tmp_path / "t.png").verify(key)


# --- read_ciphertext errors ----------------------------------------------------------------------


def _expect_file_error(path: Path, *needles: str) -> str:
    with pytest.raises(CiphertextFileError) as info:
        read_ciphertext(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ")
    assert "\n" not in message
    for needle in needles:
        assert needle in message
    return message


def test_read_missing_file(tmp_path: Path) -> None:
    _expect_file_error(tmp_path / "none.png", "no such file")


def test_read_text_file_named_png(tmp_path: Path) -> None:
    path = tmp_path / "x.png"
    path.write_text("I am not an image\n")
    _expect_file_error(path, "not a readable PNG")


def test_read_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    _expect_file_error(path, "not a readable PNG")


def test_read_truncated_png(tmp_path: Path, key: SecretKey) -> None:
    full = write_ciphertext(tmp_path / "full.png", make_ct(key, h=64, w=64)).read_bytes()
    path = tmp_path / "cut.png"
    path.write_bytes(full[: len(full) - 1500])
    _expect_file_error(path, "not a readable PNG")


def test_read_jpeg(tmp_path: Path) -> None:
    path = tmp_path / "photo.png"  # misleading suffix: the content decides
    Image.fromarray(np.full((16, 16, 3), 128, np.uint8)).save(path, format="JPEG")
    _expect_file_error(path, "is a JPEG file", "ciphertexts are PNG")


def test_read_plain_png(tmp_path: Path) -> None:
    path = tmp_path / "plain.png"
    save_png(path, np.zeros((28, 28, 1), np.uint8), {"Comment": "hello"})
    _expect_file_error(path, "not a noiseveil ciphertext", "missing metadata: version, scheme, model, key_id")


def test_a_keyed_ciphertext_without_its_tag_is_refused(tmp_path: Path, key: SecretKey) -> None:
    """A file may carry no tag (a keyless scheme's); a keyed scheme's file without one is refused."""
    ct = make_ct(key)
    text = {k: v for k, v in png_text(ct).items() if k != "noiseveil:tag"}
    save_png(tmp_path / "t.png", ct.pixels, text)
    untagged = read_ciphertext(tmp_path / "t.png")
    assert not untagged.authenticated
    with pytest.raises(AuthenticationError, match="authentication failed"):
        untagged.verify(key)


def test_read_unknown_version(tmp_path: Path, key: SecretKey) -> None:
    ct = dataclasses.replace(make_ct(key), version="99")
    path = write_ciphertext(tmp_path / "v99.png", ct.seal(key))
    message = _expect_file_error(path, "version '99'")
    assert f"reads versions 1, {FORMAT_VERSION}" in message


def test_read_corrupt_tag(tmp_path: Path, key: SecretKey) -> None:
    ct = make_ct(key)
    save_png(tmp_path / "t.png", ct.pixels, png_text(ct) | {"noiseveil:tag": "not-hex"})
    _expect_file_error(tmp_path / "t.png", "corrupt authentication tag")


@pytest.mark.parametrize("mode", ["RGBA", "P", "I;16"])
def test_read_rejects_other_png_modes(tmp_path: Path, key: SecretKey, mode: str) -> None:
    ct = make_ct(key, channels=3 if mode != "I;16" else 1)
    save_png(tmp_path / "m.png", ct.pixels, png_text(ct), mode=mode)
    _expect_file_error(tmp_path / "m.png", "PNG mode", "8-bit grey or RGB")
