"""Standard codecs through Pillow: JPEG round trips and compressed sizes (EtC's compressibility).

EtC images must be JPEG-compressed with 4:4:4 chroma (no subsampling): with 4:2:0 a 2x2
chroma average mixes pixels that the colour-shuffle step gave different channel orders.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from noiseveil.exceptions import NoiseveilError

SUBSAMPLING = {"4:4:4": 0, "4:2:2": 1, "4:2:0": 2}


def _pil(image: np.ndarray) -> Image.Image:
    return Image.fromarray(image[..., 0] if image.shape[2] == 1 else image)


def _jpeg_bytes(image: np.ndarray, quality: int, subsampling: str) -> bytes:
    if subsampling not in SUBSAMPLING:
        raise ValueError(f"unknown chroma subsampling {subsampling!r}; known: {', '.join(SUBSAMPLING)}")
    buf = io.BytesIO()
    _pil(image).save(buf, format="JPEG", quality=quality, subsampling=SUBSAMPLING[subsampling])
    return buf.getvalue()


def jpeg_roundtrip(
    images: np.ndarray, quality: int, subsampling: str = "4:4:4"
) -> tuple[np.ndarray, np.ndarray]:
    """JPEG-encode then decode uint8 images (N, H, W, C); returns (decoded, bytes per image)."""
    decoded, sizes = np.empty_like(images), np.empty(len(images), dtype=np.int64)
    for i, image in enumerate(images):
        data = _jpeg_bytes(image, quality, subsampling)
        sizes[i] = len(data)
        decoded[i] = np.asarray(Image.open(io.BytesIO(data))).reshape(image.shape)
    return decoded, sizes


def jpeg_sizes(images: np.ndarray, quality: int, subsampling: str = "4:4:4") -> np.ndarray:
    """Bytes of each image as a JPEG (encode only: file-size tables need no decoding)."""
    return np.array([len(_jpeg_bytes(image, quality, subsampling)) for image in images], dtype=np.int64)


def png_sizes(images: np.ndarray, compress_level: int = 6) -> np.ndarray:
    """Bytes of each image as a lossless PNG (zlib level ``compress_level``, Pillow's default)."""
    sizes = np.empty(len(images), dtype=np.int64)
    for i, image in enumerate(images):
        buf = io.BytesIO()
        _pil(image).save(buf, format="PNG", compress_level=compress_level)
        sizes[i] = buf.tell()
    return sizes


# -- lossless image payloads (RIC's lossless preset) --------------------------------------
# WebP lossless through Pillow, chosen by measurement (scripts/benchmark_codecs.py,
# results/benchmark/lossless-codecs.json): JPEG XL is a little smaller on CIFAR-10 and LFW but
# decodes several times slower, PNG is much larger. The fixed RIFF and VP8L chunk headers
# (20 bytes) are rebuilt on decoding instead of stored: at 28x28 they
# would cost 0.2 bits per sample.
_WEBP_METHOD, _WEBP_QUALITY = 3, 50  # effort settings; output is lossless whatever they are
# The fast effort: measured on a 12-megapixel photo, method 0 encodes 5x faster than 3 for a
# bitstream about 25 % larger (what fits is then kept; what does not is encoded again at 3).
_WEBP_FAST = (0, 0)
_RIFF_HEADER_BYTES = 20


class LosslessCodecError(NoiseveilError):
    """Bytes that do not decode to an image of the expected shape."""


def lossless_encode(image: np.ndarray, fast: bool = False) -> bytes:
    """A uint8 (H, W, C) image as a WebP lossless bitstream without its container headers;
    ``fast`` trades size for encoding time (decoding is as fast either way)."""
    buf = io.BytesIO()
    method, quality = _WEBP_FAST if fast else (_WEBP_METHOD, _WEBP_QUALITY)
    _pil(image).save(buf, format="WEBP", lossless=True, method=method, quality=quality)
    data = buf.getvalue()
    if data[12:16] != b"VP8L":  # Pillow writes the simple lossless format for L and RGB images
        raise LosslessCodecError("the WebP encoder did not write a simple lossless (VP8L) file")
    length = int.from_bytes(data[16:20], "little")
    return data[_RIFF_HEADER_BYTES : _RIFF_HEADER_BYTES + length]


def lossless_decode(bitstream: bytes, shape: tuple[int, int, int]) -> np.ndarray:
    """Inverse of :func:`lossless_encode` for an image of ``shape`` (H, W, C)."""
    pad = b"\0" if len(bitstream) % 2 else b""
    chunk = b"VP8L" + len(bitstream).to_bytes(4, "little") + bitstream + pad
    riff = b"RIFF" + (4 + len(chunk)).to_bytes(4, "little") + b"WEBP" + chunk
    try:
        with Image.open(io.BytesIO(riff), formats=["WEBP"]) as im:  # no other plugin is tried
            pixels = np.asarray(im.convert("L" if shape[2] == 1 else "RGB"))
    except (OSError, ValueError, SyntaxError) as err:
        raise LosslessCodecError(f"the image payload does not decode ({err})") from None
    pixels = pixels.reshape(pixels.shape[0], pixels.shape[1], -1)
    if pixels.shape != tuple(shape):
        raise LosslessCodecError(f"the image payload decodes to {pixels.shape}, expected {tuple(shape)}")
    return pixels
