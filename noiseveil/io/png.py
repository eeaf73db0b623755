"""The ciphertext file: an ordinary 8-bit PNG with noiseveil's metadata in text chunks.

Any image tool opens it and any classifier reads its pixels. Decryption needs only this
file and the key: the ``noiseveil:*`` tEXt chunks carry the format version, scheme, model
id, key fingerprint, the scheme's public fields (nonce, lambda...) and the HMAC tag.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image, PngImagePlugin

from noiseveil.schemes.base import FORMAT_VERSION, Ciphertext

PREFIX = "noiseveil:"
_REQUIRED = ("version", "scheme", "model", "key_id", "tag")


class CiphertextFileError(Exception):
    """Not a readable noiseveil ciphertext PNG (one-line message)."""


def write_ciphertext(path: str | os.PathLike, ct: Ciphertext) -> Path:
    """Write ``ct`` as a new PNG; an existing file is never overwritten."""
    path = Path(path)
    info = PngImagePlugin.PngInfo()
    for k, v in ct.header().items():
        info.add_text(PREFIX + k, v)
    info.add_text(PREFIX + "tag", ct.tag.hex())
    return write_image(path, ct.pixels, info)


def read_ciphertext(path: str | os.PathLike) -> Ciphertext:
    """Parse a ciphertext PNG; any problem is a :class:`CiphertextFileError` naming the file."""
    path = Path(path)
    try:
        with Image.open(path) as image:
            image.load()
            fmt, mode, text = image.format, image.mode, dict(getattr(image, "text", {}))
            pixels = np.asarray(image)
    except FileNotFoundError:
        raise CiphertextFileError(f"{path}: no such file") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise CiphertextFileError(f"{path}: not a readable PNG ({err})") from None
    if fmt != "PNG":
        raise CiphertextFileError(f"{path}: is a {fmt} file, ciphertexts are PNG")
    if mode not in ("L", "RGB"):
        raise CiphertextFileError(f"{path}: PNG mode {mode}, ciphertexts are 8-bit grey or RGB")
    meta = {k[len(PREFIX) :]: v for k, v in text.items() if k.startswith(PREFIX)}
    missing = [k for k in _REQUIRED if k not in meta]
    if missing:
        raise CiphertextFileError(
            f"{path}: not a noiseveil ciphertext (missing metadata: {', '.join(missing)})"
        )
    if meta["version"] != FORMAT_VERSION:
        raise CiphertextFileError(
            f"{path}: ciphertext format version {meta['version']!r}, "
            f"this noiseveil reads version {FORMAT_VERSION}"
        )
    try:
        tag = bytes.fromhex(meta["tag"])
    except ValueError:
        raise CiphertextFileError(f"{path}: corrupt authentication tag") from None
    fields = {k[2:]: v for k, v in meta.items() if k.startswith("f.")}
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    return Ciphertext(
        pixels=pixels,
        scheme=meta["scheme"],
        model_id=meta["model"],
        key_id=meta["key_id"],
        fields=fields,
        version=meta["version"],
        tag=tag,
    )


def write_image(
    path: str | os.PathLike, pixels: np.ndarray, info: PngImagePlugin.PngInfo | None = None
) -> Path:
    """Write a uint8 (H, W, C) image as a new PNG; an existing file is never overwritten."""
    path = Path(path)
    grey = pixels.shape[2] == 1
    image = Image.fromarray(
        np.ascontiguousarray(pixels[..., 0] if grey else pixels), mode="L" if grey else "RGB"
    )
    path.parent.mkdir(parents=True, exist_ok=True)  # only once there is something to write
    try:
        with open(path, "xb") as f:
            image.save(f, format="PNG", pnginfo=info)  # "x" mode: fail rather than overwrite
    except FileExistsError:
        raise CiphertextFileError(f"{path}: exists; refusing to overwrite") from None
    return path
