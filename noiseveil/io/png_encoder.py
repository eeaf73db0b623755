"""A PNG encoder that deflates strips of rows on every core, as pigz does for gzip.

Pillow filters and deflates a PNG on one thread with zlib. For a recovered 12-megapixel photo
that is most of what writing it costs, more than decrypting it (issue 26). This encoder
writes the same kind of file faster, and every PNG reader reads it:

::

    pixels (H, W, C) uint8
      │  split into strips of whole rows, one strip per core (small images: one strip)
      ▼
    strip k ── filter (Up, or None) ── raw deflate ── sync flush ──► IDAT chunk k (+ its CRC)
      │                     adler32 of the filtered bytes of strip k ──┐
      ▼                                                                ▼
    IHDR, tEXt/iTXt, zlib header, IDAT 0..n-1, adler32_combine(...) as the last IDAT, IEND

Each strip ends with a sync flush (an empty stored block on a byte boundary), so the raw
deflate streams of the strips concatenate into one valid zlib stream. A strip starts with an
empty dictionary, which costs a little compression at each seam.

Chosen by ``scripts/benchmark_photos.py`` (its ``png_encoders`` table): photos take the Up
filter (one vectorised subtraction) and ISA-L's deflate at level 1 (``isal``, several times
faster than zlib's level 1 and smaller than Pillow's level-1 file); a ciphertext is noise,
which nothing compresses, so it is stored: filter None and deflate's stored blocks.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from isal import isal_zlib

from noiseveil.threads import SharedPool, cores

SIGNATURE = b"\x89PNG\r\n\x1a\n"
STRIP_BYTES = 4 << 20  # a strip smaller than this is not worth a thread hop
_ADLER_BASE = 65521
FILTER_NONE, FILTER_UP = 0, 2
_threads = SharedPool("png")


@dataclass(frozen=True)
class Deflate:
    """How the filtered rows are compressed: the PNG filter, the deflate library and level."""

    name: str
    png_filter: int
    level: int

    def compressor(self):  # raw deflate (no zlib header): the strips are stitched into one stream
        if self.level == 0:  # stored blocks: zlib copies, ISA-L's level 0 would still Huffman-code
            return zlib.compressobj(0, zlib.DEFLATED, -15)
        return isal_zlib.compressobj(self.level, isal_zlib.DEFLATED, -15)


PHOTO = Deflate("Up filter, ISA-L level 1", FILTER_UP, 1)
STORED = Deflate("no filter, stored", FILTER_NONE, 0)


def encode_png(
    pixels: np.ndarray,
    text: Mapping[str, str] | None = None,
    deflate: Deflate = PHOTO,
    strip_bytes: int = STRIP_BYTES,
) -> bytes:
    """The PNG file of a uint8 (H, W, C) image, C = 1 (grey) or 3 (RGB), with ``text`` as
    tEXt chunks (iTXt where a value is not Latin-1)."""
    if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[2] not in (1, 3) or 0 in pixels.shape:
        raise ValueError(f"encode_png takes uint8 (H, W, 1 or 3) pixels, not {pixels.dtype}{pixels.shape}")
    height, width, channels = pixels.shape
    rows = np.ascontiguousarray(pixels).reshape(height, width * channels)
    header = struct.pack(">IIBBBBB", width, height, 8, 0 if channels == 1 else 2, 0, 0, 0)
    parts = [SIGNATURE, *_chunk(b"IHDR", header)]
    for key, value in (text or {}).items():
        parts += _text_chunk(key, value)
    idat, adler = _deflate_rows(rows, deflate, strip_bytes)
    parts += idat
    parts += [*_chunk(b"IDAT", struct.pack(">I", adler)), *_chunk(b"IEND", b"")]
    return b"".join(parts)  # the one copy of the compressed data


def _deflate_rows(rows: np.ndarray, deflate: Deflate, strip_bytes: int) -> tuple[list[bytes], int]:
    """The pieces of the strips' IDAT chunks, zlib header first, and the stream's adler32."""
    strips = max(1, min(cores(), rows.shape[0], rows.nbytes // max(strip_bytes, 1)))
    zlib_header = b"\x78\x01"  # deflate, 32 KiB window, "fastest" (the check bits make it 0 mod 31)
    if strips == 1:  # a small image: one strip, on this thread, no thread hop
        chunk, adler, _ = _deflate_strip(rows, 0, rows.shape[0], deflate, True, zlib_header)
        return chunk, adler
    bounds = np.linspace(0, rows.shape[0], strips + 1).astype(int)
    jobs = [
        (rows, int(bounds[k]), int(bounds[k + 1]), deflate, k == strips - 1, zlib_header if k == 0 else b"")
        for k in range(strips)
    ]
    done = list(_threads().map(lambda job: _deflate_strip(*job), jobs))
    adler = 1
    for _, strip_adler, length in done:
        adler = adler32_combine(adler, strip_adler, length)
    return [piece for chunk, _, _ in done for piece in chunk], adler


def _deflate_strip(
    rows: np.ndarray, start: int, stop: int, deflate: Deflate, last: bool, prefix: bytes
) -> tuple[list[bytes], int, int]:
    """One IDAT chunk (its pieces) of rows[start:stop] (filtered, deflated, flushed), the filtered bytes'
    adler32 and their length. Runs on a worker thread: numpy, zlib and ISA-L release the GIL."""
    strip = rows[start:stop]
    filtered = np.empty((stop - start, rows.shape[1] + 1), np.uint8)
    filtered[:, 0] = deflate.png_filter
    if deflate.png_filter == FILTER_UP:  # each byte minus the one above it (row 0: minus zero)
        np.subtract(strip[1:], strip[:-1], out=filtered[1:, 1:])
        np.subtract(strip[0], rows[start - 1] if start else 0, out=filtered[0, 1:], casting="unsafe")
    else:
        filtered[:, 1:] = strip
    data = memoryview(filtered).cast("B")
    compressor = deflate.compressor()
    body = [prefix, compressor.compress(data), compressor.flush(zlib.Z_FINISH if last else zlib.Z_SYNC_FLUSH)]
    return _chunk(b"IDAT", *body), zlib.adler32(data), data.nbytes


def adler32_combine(adler1: int, adler2: int, length2: int) -> int:
    """The adler32 of A + B from adler32(A), adler32(B) and len(B) (zlib's adler32_combine,
    which Python's zlib does not expose)."""
    rem = length2 % _ADLER_BASE
    sum1 = adler1 & 0xFFFF
    sum2 = (rem * sum1) % _ADLER_BASE
    sum1 = (sum1 + (adler2 & 0xFFFF) + _ADLER_BASE - 1) % _ADLER_BASE
    sum2 = (sum2 + (adler1 >> 16) + (adler2 >> 16) + _ADLER_BASE - rem) % _ADLER_BASE
    return sum1 | (sum2 << 16)


def _chunk(kind: bytes, *data: bytes) -> list[bytes]:
    """A chunk's pieces (length and type, its data in pieces, CRC), joined once by the caller."""
    crc = zlib.crc32(kind)
    for piece in data:
        crc = zlib.crc32(piece, crc)
    return [struct.pack(">I", sum(map(len, data))) + kind, *data, struct.pack(">I", crc)]


def _text_chunk(key: str, value: str) -> list[bytes]:
    keyword = key.encode("latin-1")
    if not 1 <= len(keyword) <= 79 or b"\0" in keyword:
        raise ValueError(f"PNG text keyword must be 1-79 Latin-1 characters: {key!r}")
    try:
        return _chunk(b"tEXt", keyword + b"\0" + value.encode("latin-1"))
    except UnicodeEncodeError:  # iTXt: uncompressed, no language tag, no translated keyword
        return _chunk(b"iTXt", keyword + b"\0\0\0\0\0" + value.encode("utf-8"))
