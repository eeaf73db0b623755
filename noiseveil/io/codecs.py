"""Standard codecs through Pillow: JPEG round trips and compressed sizes (EtC's compressibility).

EtC images must be JPEG-compressed with 4:4:4 chroma (no subsampling): with 4:2:0 a 2x2
chroma average mixes pixels that the colour-shuffle step gave different channel orders.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

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
