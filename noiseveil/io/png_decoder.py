"""A fast path for reading the PNGs noiseveil writes: 8-bit grey or RGB, not interlaced, every
row filtered alike with None or Up (what :mod:`noiseveil.io.png_encoder` writes).

Decrypting a photo through files read its ciphertext with Pillow, which inflates with zlib and
unfilters row by row in one thread: for a 12-megapixel ciphertext, a stored 36 MB stream, that
is a large share of what decrypting a file costs beyond decrypting it (issue 26). Here the
chunks are walked once (each CRC checked), the one zlib stream is inflated by ISA-L (its
adler32 checked), and the rows are unfiltered by a vectorised cumulative sum::

    chunks ── CRC ──► IHDR (8-bit grey/RGB, no interlace), tEXt/iTXt, IDAT ... IEND
    IDAT bytes ── inflate (ISA-L) ──► rows (H, 1 + W·C): filter byte, then the row
    all None: the rows as they are;  all Up: each row plus the one above it (mod 256)

Anything else (a palette, 16 bits, interlace, Sub/Average/Paeth rows, compressed text, an
unknown critical chunk, a bad CRC) is not this path's to judge: :func:`decode_png` returns
None and the caller reads the file with Pillow, which decodes or refuses it as before.
"""

from __future__ import annotations

import struct

import numpy as np
from isal import isal_zlib

from noiseveil.io.png_encoder import FILTER_NONE, FILTER_UP, SIGNATURE

_KNOWN = {b"IHDR", b"IDAT", b"IEND", b"tEXt", b"iTXt"}
_CUMSUM_BYTES = 1 << 18  # below this, one cumsum beats a Python loop over the rows (measured)


def decode_png(data: bytes | memoryview) -> tuple[np.ndarray, dict[str, str]] | None:
    """The pixels (H, W, C) uint8 and text chunks of a PNG this path reads, else None."""
    view = memoryview(data)
    if view[:8] != SIGNATURE:
        return None
    header, text, idat = None, {}, []
    at = 8
    while at + 12 <= len(view):
        length, kind = struct.unpack(">I4s", view[at : at + 8])
        body = view[at + 8 : at + 8 + length]
        if len(body) != length or at + 12 + length > len(view):
            return None
        (crc,) = struct.unpack(">I", view[at + 8 + length : at + 12 + length])
        if isal_zlib.crc32(body, isal_zlib.crc32(kind)) != crc:
            return None
        at += 12 + length
        if kind == b"IEND":
            break
        if kind not in _KNOWN:
            if kind[0] & 0x20:  # ancillary (lower-case first letter): safe to skip
                continue
            return None
        if kind == b"IHDR":
            header = _header(body)
        elif kind == b"IDAT":
            idat.append(body)
        elif not _read_text(kind, bytes(body), text):
            return None
    else:
        return None  # no IEND
    if header is None or not idat:
        return None
    height, width, channels = header
    try:  # chunk by chunk: joining the IDAT chunks first would copy a photo's stream once more
        inflate = isal_zlib.decompressobj()
        raw = b"".join([inflate.decompress(chunk) for chunk in idat])
        if not inflate.eof:
            return None
    except isal_zlib.error:
        return None
    if len(raw) != height * (width * channels + 1):
        return None
    rows = np.frombuffer(raw, np.uint8).reshape(height, width * channels + 1)
    pixels = _unfiltered(rows)
    return None if pixels is None else (pixels.reshape(height, width, channels), text)


def _header(body: memoryview) -> tuple[int, int, int] | None:
    if len(body) != 13:
        return None
    width, height, depth, colour, compression, png_filter, interlace = struct.unpack(">IIBBBBB", body)
    if depth != 8 or colour not in (0, 2) or (compression, png_filter, interlace) != (0, 0, 0):
        return None
    if not 0 < width * height <= _max_pixels():
        return None
    return height, width, 1 if colour == 0 else 3


def _max_pixels() -> float:
    """Pillow's decompression-bomb bound: a larger image is Pillow's to refuse, as before."""
    from PIL import Image

    return float("inf") if Image.MAX_IMAGE_PIXELS is None else 2 * Image.MAX_IMAGE_PIXELS


def _read_text(kind: bytes, body: bytes, text: dict[str, str]) -> bool:
    """Add a tEXt or uncompressed iTXt chunk to ``text``; False where this path does not read it."""
    keyword, sep, rest = body.partition(b"\0")
    if not sep:
        return False
    if kind == b"tEXt":
        text[keyword.decode("latin-1")] = rest.decode("latin-1")
        return True
    if len(rest) < 2 or rest[0] != 0:  # compressed iTXt: Pillow's to read
        return False
    language, sep1, rest = rest[2:].partition(b"\0")
    _translated, sep2, value = rest.partition(b"\0")
    if not (sep1 and sep2):
        return False
    try:
        text[keyword.decode("latin-1")] = value.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _unfiltered(rows: np.ndarray) -> np.ndarray | None:
    """The image bytes of filtered rows (H, 1 + W·C), a new writable array; None unless every
    row has the same filter, None or Up."""
    filters = rows[:, 0]
    if (filters == FILTER_NONE).all():
        return rows[:, 1:].copy()  # a copy even where the view is contiguous: writable
    if (filters == FILTER_UP).all():  # row r = its bytes plus row r − 1's pixels, mod 256
        if rows.size < _CUMSUM_BYTES:
            return np.cumsum(rows[:, 1:], axis=0, dtype=np.uint8)
        pixels = rows[:, 1:].copy()
        for r in range(1, len(pixels)):  # row by row: cumsum down axis 0 of a photo is 5x slower
            np.add(pixels[r], pixels[r - 1], out=pixels[r])
        return pixels
    return None
