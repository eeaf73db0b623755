"""The authenticated ciphertext and its file: an ordinary 8-bit PNG with noiseveil's metadata
in text chunks.

Any image tool opens it and any classifier reads its pixels. Decryption needs only this
file and the key: the ``noiseveil:*`` tEXt chunks carry the format version, scheme, model
id, key fingerprint, the scheme's public fields (nonce, lambda...) and the HMAC tag.
"""

from __future__ import annotations

import errno
import hashlib
import io
import itertools
import os
import struct
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from noiseveil.crypto.keys import Key
from noiseveil.exceptions import AuthenticationError, NoiseveilError
from noiseveil.io.png_decoder import decode_png
from noiseveil.io.png_encoder import PHOTO, STORED, encode_png

FORMAT_VERSION = "2"  # 2: RIC ciphertexts carry what decryption needs (no regenerated NAE)
READABLE_VERSIONS = ("1", "2")

PREFIX = "noiseveil:"
EXISTS = "exists; refusing to overwrite"  # how every refusal to overwrite an output ends
_REQUIRED = ("version", "scheme", "model", "key_id")  # "tag" too, unless the scheme is keyless


# Format 1 named the masked RIC models by the ids the lossless ones have now.
LEGACY_MODEL_IDS = {
    "1": {"ric-cifar10": "ric-cifar10-masked", "ric-lfw": "ric-lfw-masked", "ric-mnist": "ric-mnist-masked"}
}


@dataclass
class Ciphertext:
    """An encrypted image plus the public fields its scheme needs to decrypt it (never the key)."""

    pixels: np.ndarray  # uint8 (H, W, C), C = 1 or 3
    scheme: str
    model_id: str
    key_id: str
    fields: dict[str, str] = field(default_factory=dict)
    version: str = FORMAT_VERSION
    tag: bytes = b""
    read_as: str | None = None  # not authenticated: the model id an older format's id stands for now
    # (digest of the contents, PNG bytes) once serialised: the self-check's bytes are written,
    # not made twice (noiseveil.io.png.ciphertext_to_bytes)
    encoded: tuple[bytes, bytes] | None = field(default=None, repr=False, compare=False)

    @property
    def decrypt_model(self) -> str:
        """The model id to decrypt with (``model_id``, or its current name for an older file)."""
        return self.read_as or self.model_id

    def header(self) -> dict[str, str]:
        """All metadata that is authenticated (everything but the tag)."""
        return {
            "version": self.version,
            "scheme": self.scheme,
            "model": self.model_id,
            "key_id": self.key_id,
            **{f"f.{k}": v for k, v in self.fields.items()},
        }

    def signed_bytes(self) -> bytes:
        """Canonical serialisation of header and pixels, the message the tag covers.

        Every key and value is length-prefixed, so no two different headers serialise alike
        (a plain "k=v" join would let an attacker move bytes between adjacent fields).
        """
        return b"".join(self.signed_parts())

    def signed_parts(self) -> tuple[bytes, memoryview]:
        """:meth:`signed_bytes` in two pieces, the header's and the pixels' own memory (not a copy)."""
        out = [struct.pack("<I", len(self.header()))]
        for k, v in sorted(self.header().items()):
            for part in (k.encode(), v.encode()):
                out += [struct.pack("<I", len(part)), part]
        out.append(struct.pack("<3I", *self.pixels.shape))
        return b"".join(out), memoryview(np.ascontiguousarray(self.pixels)).cast("B")

    def seal(self, key: Key) -> Ciphertext:
        self.tag = key.mac(*self.signed_parts())
        return self

    @property
    def authenticated(self) -> bool:
        """False for a keyless scheme's image: its metadata carries no tag."""
        return bool(self.tag)

    def verify(self, key: Key) -> None:
        """Raise :class:`AuthenticationError` unless ``key`` made this exact ciphertext."""
        if self.key_id and self.key_id != key.key_id:
            raise AuthenticationError(
                f"wrong key: the ciphertext was made with key {self.key_id}, this key is {key.key_id}"
            )
        if not self.tag or not key.verify(self.signed_parts(), self.tag):
            which = "" if self.key_id else "the key is wrong, or "  # no public key id to tell them apart
            raise AuthenticationError(
                f"authentication failed: {which}the ciphertext or its metadata was modified"
            )


class CiphertextFileError(NoiseveilError):
    """Not a readable noiseveil ciphertext PNG (one-line message)."""


def _png_text(ct: Ciphertext) -> dict[str, str]:
    text = {PREFIX + k: v for k, v in ct.header().items()}
    if ct.authenticated:
        text[PREFIX + "tag"] = ct.tag.hex()
    return text


def write_ciphertext(path: str | os.PathLike, ct: Ciphertext) -> Path:
    """Write ``ct`` as a new PNG; an existing file is never overwritten."""
    return write_new_file(Path(path), ciphertext_to_bytes(ct))


def ciphertext_to_bytes(ct: Ciphertext) -> bytes:
    """The exact bytes :func:`write_ciphertext` writes (made once per sealed ciphertext: the
    self-check's serialisation is the one written)."""
    state = _state(ct)
    if ct.encoded is not None and ct.encoded[0] == state:
        return ct.encoded[1]
    # A ciphertext is noise, which no deflate level compresses: it is stored (png_encoder).
    ct.encoded = (state, encode_png(ct.pixels, _png_text(ct), STORED))
    return ct.encoded[1]


def _state(ct: Ciphertext) -> bytes:
    """A digest of everything the file holds, so that cached bytes are never those of a
    ciphertext changed since (in place or by ``dataclasses.replace``)."""
    h = hashlib.sha256(repr(sorted(ct.header().items())).encode() + ct.tag)
    h.update(str(ct.pixels.shape).encode())
    h.update(memoryview(np.ascontiguousarray(ct.pixels)).cast("B"))
    return h.digest()


def ciphertext_from_bytes(data: bytes, name: str = "<bytes>") -> Ciphertext:
    """Parse ciphertext PNG bytes (an upload, or what encryption checks before writing)."""
    return read_ciphertext(io.BytesIO(data), name)


def read_ciphertext(path: str | os.PathLike | io.BytesIO, name: str | None = None) -> Ciphertext:
    """Parse a ciphertext PNG; any problem is a :class:`CiphertextFileError` naming the file."""
    path = path if isinstance(path, io.BytesIO) else Path(path)
    shown = name or path
    try:
        data = path.getbuffer() if isinstance(path, io.BytesIO) else path.read_bytes()
        fast = decode_png(data)  # the files noiseveil writes, without Pillow (png_decoder)
        if fast is not None:
            pixels, text = fast
            fmt, mode = "PNG", "L" if pixels.shape[2] == 1 else "RGB"
        else:
            fmt, mode, text, pixels = _read_with_pillow(io.BytesIO(data))
    except FileNotFoundError:
        raise CiphertextFileError(f"{shown}: no such file") from None
    except UnidentifiedImageError:  # its message names the in-memory stream, not the file
        raise CiphertextFileError(f"{shown}: not a readable PNG (not an image file)") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise CiphertextFileError(f"{shown}: not a readable PNG ({err})") from None
    if fmt != "PNG":
        raise CiphertextFileError(f"{shown}: is a {fmt} file, ciphertexts are PNG")
    if mode not in ("L", "RGB"):
        raise CiphertextFileError(f"{shown}: PNG mode {mode}, ciphertexts are 8-bit grey or RGB")
    meta = {k[len(PREFIX) :]: v for k, v in text.items() if k.startswith(PREFIX)}
    missing = [k for k in _REQUIRED if k not in meta]
    if missing:
        raise CiphertextFileError(
            f"{shown}: not a noiseveil ciphertext (missing metadata: {', '.join(missing)})"
        )
    if meta["version"] not in READABLE_VERSIONS:
        raise CiphertextFileError(
            f"{shown}: ciphertext format version {meta['version']!r}, "
            f"this noiseveil reads versions {', '.join(READABLE_VERSIONS)}"
        )
    try:
        tag = bytes.fromhex(meta.get("tag", ""))  # keyless: no tag; a keyed scheme refuses that
    except ValueError:
        raise CiphertextFileError(f"{shown}: corrupt authentication tag") from None
    fields = {k[2:]: v for k, v in meta.items() if k.startswith("f.")}
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    return Ciphertext(
        pixels=pixels,
        scheme=meta["scheme"],
        model_id=meta["model"],
        read_as=LEGACY_MODEL_IDS.get(meta["version"], {}).get(meta["model"]),
        key_id=meta["key_id"],
        fields=fields,
        version=meta["version"],
        tag=tag,
    )


def _read_with_pillow(stream: io.BytesIO) -> tuple[str | None, str, dict[str, str], np.ndarray]:
    """Format, mode, text chunks and pixels of any image file Pillow opens."""
    try:  # PNG first: asking Pillow for one format skips probing every other plugin
        image = Image.open(stream, formats=["PNG"])
    except UnidentifiedImageError:
        stream.seek(0)
        image = Image.open(stream)  # not a PNG: opened again only to name its format
    with image:
        image.load()
        return image.format, image.mode, dict(getattr(image, "text", {})), np.asarray(image)


def write_image(path: str | os.PathLike, pixels: np.ndarray, text: Mapping[str, str] | None = None) -> Path:
    """Write a uint8 (H, W, C) image as a new PNG, with ``text`` as its text chunks; an existing
    file is never overwritten. Encoded by :func:`noiseveil.io.png_encoder.encode_png`
    (strips deflated on every core).

    The file is written as a temporary (unnamed where the system allows) and hard-linked into
    place, which fails if the name exists (no overwrite) and is atomic: a process killed
    mid-write leaves no torn file, so a rerun may take every existing output as finished
    (``--skip-existing``)."""
    return write_new_file(Path(path), image_to_bytes(pixels, text))


def image_to_bytes(pixels: np.ndarray, text: Mapping[str, str] | None = None) -> bytes:
    """The exact bytes :func:`write_image` writes."""
    return encode_png(pixels, text, PHOTO)


def write_new_file(path: Path, data: bytes) -> Path:
    """``data`` as the new file ``path``, atomically and never over an existing file (see
    :func:`write_image`). An existing ``path`` is refused by the link, atomically; no check
    before it (a stat per file, on the writer thread that creating files keeps busy)."""
    try:
        if not _link_unnamed(path, data):
            _link_named_temporary(path, data)
    except FileExistsError:
        raise CiphertextFileError(f"{path}: {EXISTS}") from None
    return path


# Linux's O_TMPFILE: a file with no name until it is linked into place. Two changes to the
# folder instead of three (a named temporary is created, linked and unlinked): creating small
# files is most of their cost on some disks (measured on this machine's: about 0.075 against
# 0.106 ms a file, medians of six runs of 2,000), and a killed writer leaves nothing behind.
_O_TMPFILE = getattr(os, "O_TMPFILE", None)
_unnamed_files = {"supported": _O_TMPFILE is not None}
_NO_UNNAMED_FILES = (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL)


def _link_unnamed(path: Path, data: bytes) -> bool:
    """Write ``data`` to an unnamed file in ``path``'s folder and link it as ``path``; False if
    the file system (or a missing /proc) does not allow it, and nothing was written."""
    if not _unnamed_files["supported"]:
        return False
    folder = _open_folder(path.parent)
    try:
        fd = os.open(".", _O_TMPFILE | os.O_WRONLY, 0o666, dir_fd=folder)
    except OSError as err:
        os.close(folder)
        if err.errno not in _NO_UNNAMED_FILES:
            raise
        _unnamed_files["supported"] = False  # a file system without them: the named way
        return False
    try:
        with os.fdopen(fd, "wb", closefd=False) as f:
            f.write(data)
        # linkat(AT_SYMLINK_FOLLOW) through /proc names the open file; a dir_fd makes Python
        # call linkat, and the link fails if ``path`` exists
        os.link(f"/proc/self/fd/{fd}", path.name, dst_dir_fd=folder, follow_symlinks=True)
    except FileNotFoundError:  # no /proc: the named way (the unnamed file vanishes on close)
        _unnamed_files["supported"] = False
        return False
    finally:
        os.close(fd)
        os.close(folder)
    return True


def _open_folder(folder: Path) -> int:
    """A descriptor of ``folder``, made first if missing (only once there is something to write)."""
    try:
        return os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except FileNotFoundError:
        folder.mkdir(parents=True, exist_ok=True)
        return os.open(folder, os.O_RDONLY | os.O_DIRECTORY)


def _link_named_temporary(path: Path, data: bytes) -> None:
    tmp, fd = _exclusive_temporary(path)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.link(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


_TEMPORARY = itertools.count()


def _exclusive_temporary(path: Path) -> tuple[Path, int]:
    """A new file beside ``path`` under a name no other writer uses (this process and thread,
    a count), opened with O_EXCL: cheaper than tempfile.mkstemp's random names, which a folder
    of 32x32 images pays per file. The folder is made only once there is something to write."""
    for _ in range(100):
        tmp = path.with_name(f".{path.name}.{os.getpid()}-{threading.get_ident()}-{next(_TEMPORARY)}.tmp")
        try:
            return tmp, os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:  # a killed writer's left-over of that name: take the next
            continue
        except FileNotFoundError:
            path.parent.mkdir(parents=True, exist_ok=True)
    raise CiphertextFileError(f"{path}: no free temporary name beside it")
