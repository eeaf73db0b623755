"""Secret keys and everything derived from them.

A scheme's key is a :class:`Key` (RIC and EtC: a 256-bit :class:`SecretKey`; AVP: a trained
generator; TransNet: :class:`NoKey`). A 256-bit key serves every use; each use gets its own
sub-key through HKDF-SHA256 with a distinct ``info`` label (and the per-image nonce as salt where
the use is per image), so that no two purposes ever share key material:

    key file (32 random bytes)
      ├─ HKDF(info="noiseveil/mac")                 -> HMAC-SHA256 key for ciphertext tags
      ├─ HKDF(salt=nonce, info="noiseveil/<use>")   -> ChaCha20 key: keyed uniform noise
      ├─ HKDF(salt=nonce, info="noiseveil/<use>")   -> one-time pads for small metadata fields
      └─ HKDF(salt=nonce, info="noiseveil/<use>")   -> ChaCha20-Poly1305 key: sealed per-image payloads

The keyed noise generator is ChaCha20 (a counter-based stream cipher) rather than a
seeded global RNG: its output depends on nothing but (key, nonce, use), on every
platform, and recovering the key from it is as hard as breaking ChaCha20.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import os
import secrets
import stat
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from typing_extensions import Buffer  # collections.abc.Buffer from Python 3.12

import numpy as np
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from noiseveil.exceptions import NoiseveilError

KEY_BYTES = 32
TAG_BYTES = 32  # HMAC-SHA256: every keyed scheme's ciphertext tag
NONCE_BYTES = 16
_KEY_FILE_HEADER = "noiseveil-key-v1"


class KeyFileError(NoiseveilError):
    """A key file is missing, unreadable or malformed (one-line message)."""


def new_nonce() -> bytes:
    """A fresh random per-image nonce (128 bits, so collisions never happen in practice)."""
    return secrets.token_bytes(NONCE_BYTES)


class Key(ABC):
    """A scheme's key: the secret material its decryption needs, named in public by ``key_id``.

    Schemes differ in what the secret is (RIC and EtC: 256 random bits; AVP: a trained
    generator network; TransNet: nothing), so callers never build one by hand: they ask the
    scheme (:meth:`~noiseveil.schemes.base.Scheme.keygen`) or read a file (:func:`load_key`,
    which finds the kind in the file). Every key file is written with mode 0600 and never over
    an existing file. A keyed kind also authenticates ciphertexts (:meth:`mac`).
    """

    kind: ClassVar[str]  # what a scheme's ``Capabilities.key`` names
    # Size of the secret as a bit string (what a brute-force search must cover), or None for
    # a secret that is not one (a trained generator).
    secret_bits: ClassVar[int | None] = None

    @classmethod
    def generate(cls, seed: bytes | None = None) -> Key:
        """A new key of this kind; ``seed`` makes it reproducible. Kinds whose key must be
        trained (AVP's generator) are made by their scheme's ``keygen`` instead."""
        raise KeyFileError(f"a {cls.kind} key is made by its scheme's keygen")

    @property
    @abstractmethod
    def key_id(self) -> str:
        """A public fingerprint that says which key made a file (empty for no key)."""

    @abstractmethod
    def mac(self, *message: Buffer) -> bytes:
        """An authentication tag for ``message`` under this key, given whole or in pieces (the
        tag of their concatenation: a 36 MB image is authenticated without being copied)."""

    def verify(self, message: Buffer | tuple[Buffer, ...], tag: bytes) -> bool:
        parts = message if isinstance(message, tuple) else (message,)
        return hmac.compare_digest(self.mac(*parts), tag)

    @abstractmethod
    def to_file_bytes(self) -> bytes:
        """The key file's whole content."""

    @classmethod
    @abstractmethod
    def from_file_bytes(cls, data: bytes, path: Path) -> Key:
        """Parse a key file's content; raise :class:`KeyFileError` naming ``path`` if malformed."""

    def save(self, path: str | os.PathLike) -> Path:
        """Write the key to a new file with mode 0600; never overwrite an existing file."""
        return write_private_file(Path(path), self.to_file_bytes())

    @classmethod
    def load(cls, path: str | os.PathLike) -> Key:
        key = load_key(path)
        if not isinstance(key, cls):
            raise KeyFileError(f"{path}: a {key.kind} key file, not a {cls.kind} one")
        return key


def write_private_file(path: Path, data: bytes) -> Path:
    """Create ``path`` with mode 0600 and write ``data``; refuse if it exists."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise KeyFileError(f"{path}: exists; refusing to overwrite a key file") from None
    except OSError as err:
        raise KeyFileError(f"{path}: cannot create key file ({err.strerror})") from None
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    return path


# Key file kinds by the first line of the file; a new key kind registers here.
KEY_FILE_KINDS: dict[bytes, type[Key]] = {}
KEY_KINDS: dict[str | None, type[Key]] = {}


def register_key_kind(header: bytes, key_type: type[Key]) -> type[Key]:
    KEY_FILE_KINDS[header] = key_type
    KEY_KINDS[key_type.kind] = key_type
    return key_type


def load_key(path: str | os.PathLike) -> Key:
    """Read any noiseveil key file; its first line says which kind of key it holds."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise KeyFileError(f"{path}: key file not found") from None
    except OSError as err:
        raise KeyFileError(f"{path}: cannot read key file ({err.strerror})") from None
    key_type = KEY_FILE_KINDS.get(data.split(b"\n", 1)[0])
    if key_type is None:
        raise KeyFileError(f"{path}: not a noiseveil key file")
    key = key_type.from_file_bytes(data, path)
    if os.name == "posix" and stat.S_IMODE(path.stat().st_mode) & 0o077:
        # Not fatal (the user may have copied it), but worth one line.
        import warnings

        warnings.warn(f"{path}: key file is readable by other users", stacklevel=2)
    return key


@dataclass(frozen=True, repr=False)
class SecretKey(Key):
    """A 256-bit secret key (RIC, EtC). ``repr`` never shows the bytes."""

    material: bytes
    kind: ClassVar[str] = "secret-256"
    secret_bits: ClassVar[int | None] = 8 * KEY_BYTES

    def __post_init__(self) -> None:
        if len(self.material) != KEY_BYTES:
            raise KeyFileError(f"a key must be {KEY_BYTES} bytes, got {len(self.material)}")

    def __repr__(self) -> str:
        return f"SecretKey(id={self.key_id})"

    @classmethod
    def generate(cls, seed: bytes | None = None) -> SecretKey:
        """A random key; with ``seed``, the key SHA-256(seed): reproducible keys for experiments
        and attacks (a seeded key is as secret as its seed)."""
        return cls(secrets.token_bytes(KEY_BYTES) if seed is None else hashlib.sha256(seed).digest())

    @functools.cached_property  # derived once: a folder of small images asks for it per file
    def key_id(self) -> str:
        """A public fingerprint (8 hex digits) that says which key made a file, and reveals nothing."""
        return self.derive("noiseveil/key-id", length=4).hex()

    @functools.cached_property
    def _mac_key(self) -> bytes:
        return self.derive("noiseveil/mac")

    def derive(self, use: str, length: int = 32, salt: bytes | None = None) -> bytes:
        """HKDF-SHA256 sub-key for one purpose (``use``), optionally bound to a nonce."""
        hkdf = HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=use.encode())
        return hkdf.derive(self.material)

    def mac(self, *message: Buffer) -> bytes:
        """HMAC-SHA256 tag of ``message`` (its pieces in order) under the key's MAC sub-key."""
        tag = hmac.new(self._mac_key, digestmod=hashlib.sha256)
        for piece in message:
            tag.update(piece)
        return tag.digest()

    def with_bit_flipped(self, bit: int) -> SecretKey:
        """The key one bit away (bit 0 = lowest bit of the first byte): for avalanche attacks."""
        material = bytearray(self.material)
        material[bit // 8] ^= 1 << (bit % 8)
        return SecretKey(bytes(material))

    def to_file_bytes(self) -> bytes:
        return f"{_KEY_FILE_HEADER}\n{self.material.hex()}\n".encode()

    @classmethod
    def from_file_bytes(cls, data: bytes, path: Path) -> SecretKey:
        try:
            lines = data.decode("ascii").split()
        except UnicodeDecodeError:
            raise KeyFileError(f"{path}: key file is corrupt (not text)") from None
        if len(lines) != 2 or lines[0] != _KEY_FILE_HEADER:
            raise KeyFileError(f"{path}: not a noiseveil key file")
        try:
            material = bytes.fromhex(lines[1])
        except ValueError:
            raise KeyFileError(f"{path}: key file is corrupt (not hexadecimal)") from None
        if len(material) != KEY_BYTES:
            raise KeyFileError(f"{path}: key file is corrupt (wrong length)")
        return cls(material)


@dataclass(frozen=True)
class NoKey(Key):
    """The key of a keyless scheme (TransNet): nothing secret, nothing to store, no tag."""

    kind: ClassVar[str] = "none"
    secret_bits: ClassVar[int | None] = 0

    @classmethod
    def generate(cls, seed: bytes | None = None) -> NoKey:
        return cls()

    @property
    def key_id(self) -> str:
        return ""

    def mac(self, *message: Buffer) -> bytes:
        raise KeyFileError("a keyless scheme authenticates nothing")

    def verify(self, message: Buffer | tuple[Buffer, ...], tag: bytes) -> bool:
        return False

    def to_file_bytes(self) -> bytes:
        raise KeyFileError("a keyless scheme has no key to save")

    @classmethod
    def from_file_bytes(cls, data: bytes, path: Path) -> NoKey:
        raise KeyFileError(f"{path}: a keyless scheme has no key file")


register_key_kind(_KEY_FILE_HEADER.encode(), SecretKey)
KEY_KINDS[None] = KEY_KINDS["none"] = NoKey


class KeyStream:
    """Uniform draws from ChaCha20 keyed by HKDF(secret key, salt, use): the one keyed PRNG.

    Counter-based and platform-independent (unlike numpy's generators, whose streams are not
    promised to stay the same across releases), so a key decrypts the same way forever.
    """

    def __init__(self, key: SecretKey, use: str, salt: bytes | None = None) -> None:
        stream_key = key.derive(f"noiseveil/{use}", salt=salt)
        self._stream = Cipher(algorithms.ChaCha20(stream_key, b"\0" * 16), mode=None).encryptor()

    def words(self, count: int) -> np.ndarray:
        """``count`` uniform 32-bit words."""
        return np.frombuffer(self._stream.update(bytes(4 * count)), dtype="<u4")

    def uniform(self, shape: tuple[int, ...]) -> np.ndarray:
        """float32 in [0, 1), 24 bits per value (float32's significand: exact and unbiased)."""
        raw = self.words(int(np.prod(shape)))
        return ((raw >> 8).astype(np.float32) * np.float32(2.0**-24)).reshape(shape)

    def integers(self, m: int, count: int) -> np.ndarray:
        """``count`` uniform integers in [0, m): words >= the last multiple of m are rejected."""
        limit = (2**32 // m) * m
        out = np.empty(0, dtype=np.int64)
        while len(out) < count:
            w = self.words(count - len(out)).astype(np.int64)
            out = np.concatenate([out, w[w < limit] % m])
        return out

    def permutation(self, n: int) -> np.ndarray:
        """A uniform permutation of range(n) (Fisher-Yates)."""
        perm = np.arange(n, dtype=np.intp)
        for i in range(n - 1, 0, -1):
            j = int(self.integers(i + 1, 1)[0])
            perm[i], perm[j] = perm[j], perm[i]
        return perm


def keyed_uniform(key: SecretKey, nonce: bytes, use: str, shape: tuple[int, ...]) -> np.ndarray:
    """Uniform float32 noise in [0, 1) for one (key, nonce, use), e.g. RIC's noisy image n."""
    return KeyStream(key, use, salt=nonce).uniform(shape)


def keyed_pad(key: SecretKey, nonce: bytes, use: str, length: int) -> bytes:
    """A one-time pad for a small metadata field (fresh per nonce, so never reused)."""
    return key.derive(f"noiseveil/{use}", length=length, salt=nonce)


AEAD_TAG_BYTES = 16  # Poly1305


class PayloadError(NoiseveilError):
    """A sealed payload did not authenticate: wrong key, wrong nonce or modified bytes."""


def _aead(key: SecretKey, nonce: bytes, use: str) -> ChaCha20Poly1305:
    # One AEAD key per (secret key, per-image nonce, use), so its own nonce can be fixed:
    # no AEAD key ever encrypts two messages.
    return ChaCha20Poly1305(key.derive(f"noiseveil/{use}", salt=nonce))


def seal_payload(key: SecretKey, nonce: bytes, use: str, plaintext: bytes, aad: bytes = b"") -> bytes:
    """ChaCha20-Poly1305 encryption of ``plaintext``; the output is ``AEAD_TAG_BYTES`` longer."""
    return _aead(key, nonce, use).encrypt(bytes(12), plaintext, aad)


def open_payload(key: SecretKey, nonce: bytes, use: str, sealed: bytes, aad: bytes = b"") -> bytes:
    """Inverse of :func:`seal_payload`; raises :class:`PayloadError` unless it authenticates."""
    try:
        return _aead(key, nonce, use).decrypt(bytes(12), sealed, aad)
    except InvalidTag:
        raise PayloadError("the encrypted payload does not authenticate (wrong key or modified)") from None
