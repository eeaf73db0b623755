"""The strip-parallel PNG encoder: every file it writes is a valid PNG that Pillow and a
chunk-by-chunk reader (CRCs, one zlib stream with its adler32) decode to the same pixels; the
fast decoder reads exactly those files as Pillow does and hands every other file back to it."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from noiseveil.data import load_photos
from noiseveil.io import png_encoder
from noiseveil.io.png_decoder import decode_png
from noiseveil.io.png_encoder import PHOTO, STORED, adler32_combine, encode_png


def chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """(type, data) of each chunk, failing on a bad signature or CRC."""
    assert data[:8] == png_encoder.SIGNATURE
    out, at = [], 8
    while at < len(data):
        (length,) = struct.unpack(">I", data[at : at + 4])
        kind, body = data[at + 4 : at + 8], data[at + 8 : at + 8 + length]
        (crc,) = struct.unpack(">I", data[at + 8 + length : at + 12 + length])
        assert crc == zlib.crc32(kind + body), kind
        out.append((kind, body))
        at += 12 + length
    assert out[0][0] == b"IHDR" and out[-1] == (b"IEND", b"")
    return out


def decode_by_hand(data: bytes) -> np.ndarray:
    """Pixels from the concatenated IDAT stream (zlib checks its adler32), Up/None filters."""
    parts = chunks(data)
    width, height, _, colour = struct.unpack(">IIBB", parts[0][1][:10])
    channels = 1 if colour == 0 else 3
    raw = zlib.decompress(b"".join(body for kind, body in parts if kind == b"IDAT"))
    rows = np.frombuffer(raw, np.uint8).reshape(height, width * channels + 1)
    assert set(np.unique(rows[:, 0])) <= {0, 2}
    pixels = rows[:, 1:].copy()
    for r in range(height):
        if rows[r, 0] == 2 and r:
            pixels[r] += pixels[r - 1]
    return pixels.reshape(height, width, channels)


def pillow(data: bytes) -> tuple[np.ndarray, dict]:
    with Image.open(io.BytesIO(data), formats=["PNG"]) as image:
        image.load()
        pixels = np.asarray(image)
        return (pixels[..., None] if pixels.ndim == 2 else pixels), dict(image.text)


@pytest.mark.parametrize("deflate", [PHOTO, STORED], ids=["photo", "stored"])
@pytest.mark.parametrize("shape", [(1, 1, 1), (1, 9, 3), (7, 3, 1), (61, 45, 3)])
@pytest.mark.parametrize("strip_bytes", [1, 97, 1 << 30], ids=["row-strips", "some-strips", "one-strip"])
def test_every_strip_layout_decodes_to_the_pixels(deflate, shape, strip_bytes, monkeypatch):
    monkeypatch.setattr(png_encoder, "cores", lambda: 4)  # more strips than this machine's cores
    pixels = np.random.default_rng(sum(shape)).integers(0, 256, shape, dtype=np.uint8)
    data = encode_png(pixels, {"noiseveil:scheme": "ric-lossless"}, deflate, strip_bytes=strip_bytes)
    assert np.array_equal(decode_by_hand(data), pixels)
    back, text = pillow(data)
    assert np.array_equal(back, pixels) and text == {"noiseveil:scheme": "ric-lossless"}
    fast, fast_text = decode_png(data)
    assert np.array_equal(fast, pixels) and fast_text == text and fast.flags.writeable
    idat = sum(kind == b"IDAT" for kind, _ in chunks(data)) - 1  # the last holds the adler32 only
    assert idat == min(4, shape[0], max(1, pixels.nbytes // strip_bytes))


def test_a_photo_is_deflated_in_strips_on_the_cores_and_smaller_than_pillows_level_1():
    coffee = dict(load_photos())["coffee"]
    photo = np.asarray(Image.fromarray(coffee).resize((2400, 1600), Image.LANCZOS))
    data = encode_png(photo)
    if png_encoder.cores() > 1:
        assert sum(kind == b"IDAT" for kind, _ in chunks(data)) > 2
    assert np.array_equal(pillow(data)[0], photo)
    reference = io.BytesIO()
    Image.fromarray(photo).save(reference, format="PNG", compress_level=1)
    assert len(data) < reference.tell()


def test_text_beyond_latin_1_is_an_itxt_chunk():
    data = encode_png(np.zeros((2, 2, 3), np.uint8), {"Comment": "clé €"})
    assert [kind for kind, _ in chunks(data)].count(b"iTXt") == 1
    assert pillow(data)[1] == {"Comment": "clé €"} == decode_png(data)[1]


@pytest.mark.parametrize(
    "pixels", [np.zeros((0, 3, 3), np.uint8), np.zeros((2, 2, 4), np.uint8), np.zeros((2, 2, 3), np.uint16)]
)
def test_what_is_not_an_8_bit_grey_or_rgb_image_is_refused(pixels):
    with pytest.raises(ValueError, match="uint8"):
        encode_png(pixels)


def test_adler32_combine_matches_zlib_on_any_split():
    data = np.random.default_rng(1).integers(0, 256, 200_000, dtype=np.uint8).tobytes()
    for cut in (0, 1, 65_520, 65_521, 65_522, 131_071, 199_999, 200_000):
        head, tail = data[:cut], data[cut:]
        assert adler32_combine(zlib.adler32(head), zlib.adler32(tail), len(tail)) == zlib.adler32(data)


def _pillow_png(image: Image.Image, **options) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG", **options)
    return out.getvalue()


def _with_ihdr_byte(data: bytes, at: int, value: int) -> bytes:
    """``data`` with byte ``at`` of its IHDR's data set to ``value``, the chunk's CRC made anew."""
    header = bytearray(data[16:29])
    header[at] = value
    return data[:16] + bytes(header) + struct.pack(">I", zlib.crc32(b"IHDR" + header)) + data[33:]


def _with_byte_flipped(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 1]) + data[at + 1 :]


def test_the_fast_decoder_hands_every_other_png_back_to_pillow():
    """Anything but 8-bit grey or RGB rows filtered alike with None or Up, uncompressed text and
    intact chunks is not the fast path's: None, and the caller asks Pillow."""
    photo = dict(load_photos())["coffee"][:64, :64]
    ours = encode_png(photo)
    others = {
        "Pillow's adaptive filters": _pillow_png(Image.fromarray(photo)),
        "a palette": _pillow_png(Image.fromarray(photo).convert("P")),
        "16 bits": _pillow_png(Image.fromarray(photo[..., 0].astype(np.uint16) * 257)),
        "RGBA": _pillow_png(Image.fromarray(photo).convert("RGBA")),
        "interlaced": _with_ihdr_byte(ours, 12, 1),  # Pillow writes no interlaced PNG
        "2 bits": _with_ihdr_byte(ours, 8, 2),
        "not a PNG": b"GIF89a" + ours[6:],
        "a bad CRC": _with_byte_flipped(ours, len(ours) - 20),  # inside the last IDAT
        "no IEND": ours[:-12],
        "truncated": ours[: len(ours) // 2],
    }
    for name, data in others.items():
        assert decode_png(data) is None, name
    assert np.array_equal(decode_png(ours)[0], photo)
    assert np.array_equal(pillow(others["Pillow's adaptive filters"])[0], photo)


def test_ciphertexts_read_the_same_through_the_fast_path_and_through_pillow(monkeypatch):
    """read_ciphertext of a written ciphertext (grey and RGB, text beyond Latin-1) is the same
    Ciphertext whether the fast decoder reads it or Pillow does; a file it does not take is still
    read, by Pillow."""
    from noiseveil.crypto.keys import SecretKey
    from noiseveil.io import png
    from noiseveil.io.png import Ciphertext, ciphertext_from_bytes, ciphertext_to_bytes

    key, rng = SecretKey(bytes(32)), np.random.default_rng(3)
    for shape in ((32, 32, 3), (28, 28, 1), (300, 451, 3)):
        pixels = rng.integers(0, 256, shape, dtype=np.uint8)
        ct = Ciphertext(pixels, "ric-lossless", "m", key.key_id, {"x": "ü €"}).seal(key)
        data = ciphertext_to_bytes(ct)
        fast = ciphertext_from_bytes(data)
        monkeypatch.setattr(png, "decode_png", lambda _data: None)
        slow = ciphertext_from_bytes(data)
        monkeypatch.undo()
        assert _same(fast, slow) and _same(fast, ct) and fast.pixels.shape == shape
        fast.verify(key)
    pillow_written = _pillow_png(Image.fromarray(pixels), pnginfo=_pnginfo(png._png_text(ct)))
    assert decode_png(pillow_written) is None and _same(ciphertext_from_bytes(pillow_written), ct)


def _same(a, b) -> bool:
    return np.array_equal(a.pixels, b.pixels) and a.header() == b.header() and a.tag == b.tag


def _pnginfo(text: dict[str, str]):
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    for k, v in text.items():
        info.add_itxt(k, v) if not v.isascii() else info.add_text(k, v)
    return info
